// A raw disk image as a virtio-blk device. The guest root is attached read-only so that one image
// can back every VM on the host and a guest can never change it.
import { virtioDevice, type VirtioTransport } from "./machine.js";
import { qemuOpts } from "./opts.js";

export interface DiskOptions {
  id: string;
  path: string;
  readOnly: boolean;
  transport: VirtioTransport;
}

export function renderDisk(opts: DiskOptions): string[] {
  // -blockdev takes JSON, which needs no escaping rules of its own.
  const blockdev = {
    "node-name": opts.id,
    driver: "raw",
    "read-only": opts.readOnly,
    file: { driver: "file", filename: opts.path, "read-only": opts.readOnly },
  };
  return ["-blockdev", JSON.stringify(blockdev), "-device", qemuOpts(virtioDevice("virtio-blk", opts.transport), { drive: opts.id })];
}
