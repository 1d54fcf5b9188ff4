// ReclaimIdleMemory: the host found the pod idle, and the agent gives back its own cold memory.
// What an idle pod's guest holds that is not the kernel's is mostly the agent's anonymous memory
// (~14 MiB: V8 heap, the snapshot node keeps, malloc), of which an idle agent touches ~1.4 MiB a
// minute; compressed it is 40-45 % of that (docs/density.md "Compressing the idle agent"). So the
// guest swaps it to a zram device: cgroup v2 memory.reclaim on the agent's own cgroup pushes its
// cold pages there, compressed, and free page reporting hands the freed guest pages to the host.
//
// Set up on the first call, not at boot (the device's table and swap maps cost guest memory):
// 1. the containers' parent cgroup gets memory.swap.max 0 before swap exists: a container's memory
//    never goes to swap, so a container over its limit is OOM-killed as on runc, which has none;
// 2. /dev/zram0 gets its compressor and size, a swap header, and `busybox swapon`.
// The pages a reclaim frees are scattered 4 KiB pages: at the reporting order the agent sets after
// boot (3: 32 KiB blocks, boot-memory.ts) free page reporting returned ~3.3 of the ~6.3 MiB freed,
// at order 0 ~5.3. So each reclaim lowers the order to 0 for a minute, long enough for the
// reporting rounds to hand over what it freed, then puts the order back.
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { AGENT_CGROUP, AGENT_CGROUP_PARAM, CONTAINERS_CGROUP, ZRAM_ALGORITHM_PARAM } from "../protocol/contract/guest.js";
import { REPORTING_ORDER_PATH } from "./boot-memory.js";
import { describeError, KataError } from "../util/errors.js";

const run = promisify(execFile);

/** The zram device's size (what it can hold uncompressed): the agent's ~14 MiB with room; its table costs 16 bytes a page. */
export const ZRAM_DISK_BYTES = 32 * 1024 * 1024;
/** zram's own default compressor; lz4 is the other one the project kernel has. */
export const DEFAULT_ZRAM_ALGORITHM = "lzo-rle";
const PAGE = 4096;

/** How long the reporting order stays at 0 after a reclaim (reporting hands over a free list in rounds of 2 s). */
export const LOW_ORDER_MS = 60_000;

export interface IdleReclaimPaths {
  cgroupRoot: string;
  /** Free page reporting's order (/sys/module/page_reporting/parameters/page_reporting_order). */
  reportingOrder: string;
  /** The zram device's sysfs directory and its node. */
  zramSys: string;
  zramDev: string;
  procSwaps: string;
  /** The agent's own cgroup membership (/proc/self/cgroup). */
  selfCgroup: string;
  cmdline: string;
}

export const guestReclaimPaths: IdleReclaimPaths = {
  cgroupRoot: "/sys/fs/cgroup",
  reportingOrder: REPORTING_ORDER_PATH,
  zramSys: "/sys/block/zram0",
  zramDev: "/dev/zram0",
  procSwaps: "/proc/swaps",
  selfCgroup: "/proc/self/cgroup",
  cmdline: "/proc/cmdline",
};

export interface IdleReclaimResult {
  agentBytesBefore: bigint;
  agentBytesAfter: bigint;
  /** What the zram device holds, uncompressed, and the guest memory it uses for it. */
  swappedBytes: bigint;
  storedBytes: bigint;
}

/** Turns swap on: `busybox swapon DEV` (static, already in memory); replaceable in tests. */
export type SwapOn = (device: string) => Promise<void>;

const busyboxSwapOn: SwapOn = async (device) => {
  await run("busybox", ["swapon", device], { timeout: 10_000 });
};

/** A version-1 swap header (what mkswap writes) for a device of `deviceBytes`: no bad pages, no label. */
export function swapHeader(deviceBytes: number, pageSize = PAGE): Buffer {
  const header = Buffer.alloc(pageSize);
  header.writeUInt32LE(1, 1024); // version
  header.writeUInt32LE(Math.floor(deviceBytes / pageSize) - 1, 1028); // last_page
  header.writeUInt32LE(0, 1032); // nr_badpages
  header.write("SWAPSPACE2", pageSize - 10, "latin1");
  return header;
}

/** The cgroup v2 path in /proc/self/cgroup ("0::/kata-agent"), or undefined without one. */
export function unifiedCgroup(text: string): string | undefined {
  const line = text.split("\n").find((l) => l.startsWith("0::"));
  return line?.slice(3).trim();
}

/** zram's mm_stat: orig_data_size compr_data_size mem_used_total ... (bytes). */
export function parseMmStat(text: string): { origBytes: bigint; usedBytes: bigint } {
  const f = text.trim().split(/\s+/);
  return { origBytes: BigInt(f[0] ?? "0"), usedBytes: BigInt(f[2] ?? "0") };
}

/** The compressor from `kata_ts.zram_algorithm=NAME`, else lzo-rle. */
export function zramAlgorithm(cmdline: string): string {
  const param = cmdline.trim().split(/\s+/).filter((p) => p.startsWith(`${ZRAM_ALGORITHM_PARAM}=`)).at(-1);
  const name = param?.slice(ZRAM_ALGORITHM_PARAM.length + 1) ?? "";
  return /^[a-z0-9-]+$/.test(name) ? name : DEFAULT_ZRAM_ALGORITHM;
}

async function writeControl(path: string, value: string): Promise<void> {
  // Write-only, never create: a missing control file is the kernel saying it has no such thing.
  const file = await open(path, constants.O_WRONLY);
  try {
    await file.write(value);
  } finally {
    await file.close();
  }
}

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

export interface IdleReclaimerOptions {
  paths?: IdleReclaimPaths;
  swapOn?: SwapOn;
  /** How long the reporting order stays at 0 after a reclaim (default LOW_ORDER_MS). */
  lowOrderMs?: number;
}

export class IdleReclaimer {
  private swapReady: Promise<void> | undefined;
  private running: Promise<IdleReclaimResult> | undefined;
  private readonly paths: IdleReclaimPaths;
  private readonly swapOn: SwapOn;
  private readonly lowOrderMs: number;
  /** The reporting order to put back once the reclaim's pages are reported; undefined: nothing to put back. */
  private savedOrder: string | undefined;
  private restoreTimer: NodeJS.Timeout | undefined;

  constructor(opts: IdleReclaimerOptions = {}) {
    this.paths = opts.paths ?? guestReclaimPaths;
    this.swapOn = opts.swapOn ?? busyboxSwapOn;
    this.lowOrderMs = opts.lowOrderMs ?? LOW_ORDER_MS;
  }

  /** One reclaim of the agent's cgroup; a call while one runs shares it. */
  reclaim(): Promise<IdleReclaimResult> {
    this.running ??= this.reclaimOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async reclaimOnce(): Promise<IdleReclaimResult> {
    const cgroup = await this.agentCgroupDir();
    // A failed set-up is tried again by the next call (the host stops calling on FAILED_PRECONDITION).
    this.swapReady ??= this.setUpSwap().catch((err: unknown) => {
      this.swapReady = undefined;
      throw err;
    });
    await this.swapReady;
    const current = join(cgroup, "memory.current");
    const before = BigInt((await readFile(current, "utf8")).trim());
    await this.lowerReportingOrder();
    try {
      // Ask for all of it: the kernel takes what it can (the pages just touched stay) and says
      // EAGAIN when that was less than asked, which is the normal case here.
      await writeControl(join(cgroup, "memory.reclaim"), before.toString());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw new KataError("INTERNAL", `memory.reclaim of ${cgroup} failed: ${describeError(err)}`, { cause: err });
    }
    const after = BigInt((await readFile(current, "utf8")).trim());
    const mm = parseMmStat(await readFile(join(this.paths.zramSys, "mm_stat"), "utf8"));
    return { agentBytesBefore: before, agentBytesAfter: after, swappedBytes: mm.origBytes, storedBytes: mm.usedBytes };
  }

  /**
   * Reporting order 0 until lowOrderMs after the last reclaim, then the order it was. Best effort:
   * a kernel without page reporting (or an operator's order 0) leaves nothing to lower.
   */
  private async lowerReportingOrder(): Promise<void> {
    if (this.savedOrder === undefined) {
      const order = (await readFile(this.paths.reportingOrder, "utf8").catch(() => "")).trim();
      if (order === "" || order === "0") return;
      if (!(await writeControl(this.paths.reportingOrder, "0").then(() => true, () => false))) return;
      this.savedOrder = order;
    }
    clearTimeout(this.restoreTimer);
    this.restoreTimer = setTimeout(() => {
      const order = this.savedOrder;
      this.savedOrder = undefined;
      if (order !== undefined) void writeControl(this.paths.reportingOrder, order).catch(() => undefined);
    }, this.lowOrderMs);
    this.restoreTimer.unref();
  }

  /** The agent's own cgroup directory; FAILED_PRECONDITION when the agent shares the root cgroup (an image without it). */
  private async agentCgroupDir(): Promise<string> {
    const path = unifiedCgroup(await readFile(this.paths.selfCgroup, "utf8").catch(() => ""));
    if (path === undefined || path === "/" || path === "") {
      throw new KataError("FAILED_PRECONDITION", `the agent runs in the guest's root cgroup, not ${AGENT_CGROUP} (the VM was booted without ${AGENT_CGROUP_PARAM}, which [hypervisor.qemu] tcg_idle_reclaim_agent adds, or from an image older than idle reclaim): a reclaim would take the containers' memory too`);
    }
    return join(this.paths.cgroupRoot, path);
  }

  private async setUpSwap(): Promise<void> {
    const swaps = await readFile(this.paths.procSwaps, "utf8").catch(() => undefined);
    if (swaps === undefined) throw new KataError("FAILED_PRECONDITION", "the guest kernel has no swap (CONFIG_SWAP): no idle reclaim");
    if (!(await exists(this.paths.zramSys))) throw new KataError("FAILED_PRECONDITION", "the guest kernel has no zram device (CONFIG_ZRAM): no idle reclaim");
    // Containers first: no swap for them before there is any swap at all.
    const containers = join(this.paths.cgroupRoot, CONTAINERS_CGROUP);
    await mkdir(containers, { recursive: true });
    try {
      await writeControl(join(containers, "memory.swap.max"), "0");
    } catch (err) {
      throw new KataError("FAILED_PRECONDITION", `cannot keep containers out of swap (${join(containers, "memory.swap.max")}: ${describeError(err)}): no idle reclaim`, { cause: err });
    }
    if (swaps.includes(this.paths.zramDev)) return;
    const disksizeFile = join(this.paths.zramSys, "disksize");
    // Sized already: an earlier set-up that failed after this step.
    if ((await readFile(disksizeFile, "utf8")).trim() === "0") {
      const algorithm = zramAlgorithm(await readFile(this.paths.cmdline, "utf8").catch(() => ""));
      await writeControl(join(this.paths.zramSys, "comp_algorithm"), algorithm).catch((err: unknown) => {
        throw new KataError("FAILED_PRECONDITION", `zram has no compressor ${algorithm} (${describeError(err)})`, { cause: err });
      });
      await writeControl(disksizeFile, String(ZRAM_DISK_BYTES));
    }
    const size = Number((await readFile(disksizeFile, "utf8")).trim());
    const dev = await open(this.paths.zramDev, constants.O_WRONLY);
    try {
      await dev.write(swapHeader(size), 0, PAGE, 0);
      await dev.datasync();
    } finally {
      await dev.close();
    }
    await this.swapOn(this.paths.zramDev);
  }
}
