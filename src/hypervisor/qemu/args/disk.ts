// A raw disk image as a virtio-blk device. The guest root is attached read-only so that one image
// can back every VM on the host and a guest can never change it.
import { qemuOpts } from "./opts.js";

export interface DiskOptions {
  id: string;
  path: string;
  readOnly: boolean;
}

export function renderDisk(opts: DiskOptions): string[] {
  // -blockdev takes JSON, which needs no escaping rules of its own.
  const blockdev = {
    "node-name": opts.id,
    driver: "raw",
    "read-only": opts.readOnly,
    file: { driver: "file", filename: opts.path, "read-only": opts.readOnly },
  };
  return ["-blockdev", JSON.stringify(blockdev), "-device", qemuOpts("virtio-blk-device", { drive: opts.id })];
}
