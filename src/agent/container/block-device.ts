// A block device the host pointed at an image while the guest runs (Firecracker: PATCH of a
// placeholder drive). The guest kernel learns the new capacity from a virtio config-change
// interrupt, handled asynchronously, so the agent waits for the size the host announced before
// it mounts: a mount that read the device at its old (placeholder) size would fail or read short.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DEV_SIZE_OPTION } from "../../protocol/contract/guest.js";
import { KataError } from "../../util/errors.js";

/** Immediate under a real VMM; generous for a loaded TCG guest, and reached only when the update never comes. */
const waitMs = 30_000;

/** The byte count of a `kata-ts.dev-size=N` option, and the options without it. */
export function splitDevSize(options: readonly string[]): { bytes: number | undefined; options: string[] } {
  let bytes: number | undefined;
  const rest: string[] = [];
  for (const o of options) {
    if (!o.startsWith(`${DEV_SIZE_OPTION}=`)) {
      rest.push(o);
      continue;
    }
    const n = Number(o.slice(DEV_SIZE_OPTION.length + 1));
    if (!Number.isSafeInteger(n) || n <= 0) throw new KataError("INVALID_ARGUMENT", `mount option ${o}: expected a positive byte count`);
    bytes = n;
  }
  return { bytes, options: rest };
}

/** Size in bytes of a block device (/sys/class/block/<name>/size counts 512-byte sectors), undefined while it is absent. */
async function deviceBytes(sysBlock: string, device: string): Promise<number | undefined> {
  const text = await readFile(`${sysBlock}/${basename(device)}/size`, "utf8").catch(() => undefined);
  return text === undefined ? undefined : Number(text.trim()) * 512;
}

/** Resolves once `device` (/dev/vdb) has `bytes`; FAILED_PRECONDITION naming what it saw after the deadline. */
export async function waitForDeviceSize(device: string, bytes: number, opts: { timeoutMs?: number; sysBlock?: string } = {}): Promise<void> {
  const sysBlock = opts.sysBlock ?? "/sys/class/block";
  const deadline = Date.now() + (opts.timeoutMs ?? waitMs);
  let seen: number | undefined;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    seen = await deviceBytes(sysBlock, device);
    if (seen === bytes) return;
    if (Date.now() >= deadline) break;
    await sleep(delay);
  }
  throw new KataError(
    "FAILED_PRECONDITION",
    `block device ${device} ${seen === undefined ? "does not exist" : `has ${seen} bytes`} in the guest after ${(opts.timeoutMs ?? waitMs) / 1000} s, ` +
      `but the host attached an image of ${bytes} bytes to it: the VMM did not deliver the drive update (see the VMM's log)`,
  );
}
