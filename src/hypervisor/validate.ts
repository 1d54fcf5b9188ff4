// Checks every driver makes on a VmConfig before anything is spawned, so a missing kernel is a
// clear NOT_FOUND rather than a VMM error after start.
import { stat } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import type { VmConfig } from "./types.js";

export const maxNetDevices = 8;

async function requireFile(what: string, path: string): Promise<void> {
  const st = await stat(path).catch((err: unknown) => {
    throw new KataError("NOT_FOUND", `${what} ${path} does not exist (build guest assets: kata-ts build-assets)`, { cause: err });
  });
  if (!st.isFile()) throw new KataError("INVALID_ARGUMENT", `${what} ${path} is not a regular file`);
}

function requireInt(id: string, what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new KataError(
      "INVALID_ARGUMENT",
      `VM ${id}: ${what} ${value} is outside what a kata-ts VM supports here (an integer from ${min} to ${max}); ` +
        `a pod's size is the configured default plus its limits (docs/configuration.md)`,
    );
  }
}

export async function validateVmConfig(config: VmConfig): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(config.id)) {
    throw new KataError("INVALID_ARGUMENT", `VM id ${JSON.stringify(config.id)} must be 1-64 of [A-Za-z0-9._-]`);
  }
  requireInt(config.id, "vcpus", config.vcpus, 1, 64);
  requireInt(config.id, "memoryMiB", config.memoryMiB, 64, 1024 * 1024);
  if ((config.netDevices?.length ?? 0) > maxNetDevices) {
    throw new KataError("INVALID_ARGUMENT", `at most ${maxNetDevices} NICs per VM`);
  }
  await requireFile("guest kernel", config.kernelPath);
  if (config.initrdPath !== undefined) await requireFile("guest initrd", config.initrdPath);
  await requireFile("guest rootfs image", config.rootfsPath);
}

