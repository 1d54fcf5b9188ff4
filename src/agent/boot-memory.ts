// Gives the host back the guest RAM that boot used and no longer needs. Free page reporting
// (virtio-balloon, free-page-reporting=on) hands QEMU only free blocks of at least
// page_reporting_order, which the 6.1 kernel sets to pageblock_order (2 MiB) when the balloon
// registers (a kernel command-line value is overwritten then, so it is set here, after boot).
// Boot leaves mostly scattered 4 KiB pages: page cache of files read once (the V8 snapshot blob,
// libraries' unmapped parts) that, once dropped, never forms a free 2 MiB block. Measured here
// (docs/guest.md "Free page reporting"): order 9 plus drop_caches returned nothing; a low order
// plus drop_caches returned the dropped cache, about 12 MiB of 104 MiB touched.
// Reporting is triggered by frees, not by free memory already there, so the order is lowered
// before the cache is dropped. Mapped pages (node's own text) stay: only clean, unmapped page
// cache goes, and what a container later reads is cached again as it is read.
import { constants } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { describeError } from "../util/errors.js";

/** 2^N pages: the smallest free block the guest reports. 0 would report single pages: more
 * virtqueue round trips and host refaults for a workload that frees and reallocates often. */
export const PAGE_REPORTING_ORDER = 3;

export interface BootMemoryPaths {
  reportingOrder: string;
  dropCaches: string;
  cmdline: string;
}

/** Free page reporting's minimum order, as the guest kernel exposes it. */
export const REPORTING_ORDER_PATH = "/sys/module/page_reporting/parameters/page_reporting_order";

const guestPaths: BootMemoryPaths = {
  reportingOrder: REPORTING_ORDER_PATH,
  dropCaches: "/proc/sys/vm/drop_caches",
  cmdline: "/proc/cmdline",
};

/** Guest kernel parameters that override the defaults (`[hypervisor.qemu] kernel_params`, bench/boot.ts variants). */
export const ORDER_PARAM = "kata_ts.page_reporting_order";
export const DROP_PARAM = "kata_ts.drop_boot_cache";

export interface BootMemoryPlan {
  /** undefined: leave the kernel's order alone. */
  order: number | undefined;
  dropCache: boolean;
}

/** What to do, from the kernel command line: `kata_ts.page_reporting_order=N` (0-10, or "kernel"), `kata_ts.drop_boot_cache=0|1`. */
export function bootMemoryPlan(cmdline: string): BootMemoryPlan {
  const plan: BootMemoryPlan = { order: PAGE_REPORTING_ORDER, dropCache: true };
  for (const param of cmdline.trim().split(/\s+/)) {
    const [key, value] = [param.slice(0, param.indexOf("=")), param.slice(param.indexOf("=") + 1)];
    if (key === ORDER_PARAM) plan.order = value === "kernel" ? undefined : /^(10|[0-9])$/.test(value) ? Number(value) : plan.order;
    if (key === DROP_PARAM) plan.dropCache = value !== "0";
  }
  return plan;
}

/**
 * Lowers the reporting order, then drops the clean page cache (1: page cache only, not dentries or
 * inodes). Each step is best effort: a kernel without page reporting or a read-only /proc only
 * means less memory returned, so failures are reported to `warn` and never thrown.
 */
export async function releaseBootMemory(warn: (message: string) => void, paths: BootMemoryPaths = guestPaths): Promise<void> {
  const plan = bootMemoryPlan(await readFile(paths.cmdline, "utf8").catch(() => ""));
  const steps: [string, string, string][] = [];
  if (plan.order !== undefined) steps.push([paths.reportingOrder, String(plan.order), "page reporting order"]);
  if (plan.dropCache) steps.push([paths.dropCaches, "1", "drop boot page cache"]);
  for (const [path, value, what] of steps) {
    try {
      // Write-only, never create: drop_caches is mode 0200, so opening it read-write is EACCES.
      const file = await open(path, constants.O_WRONLY);
      try {
        await file.write(value);
      } finally {
        await file.close();
      }
    } catch (err) {
      warn(`${what}: ${path} not written (${describeError(err)}); boot memory stays in the VM`);
    }
  }
}
