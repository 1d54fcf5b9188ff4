// virtio-fs: a vhost-user-fs device whose backend (virtiofsd) listens on socketPath; QEMU connects
// to it as a client. Requires shared guest memory (see memory.ts).
import { virtioDevice, type VirtioTransport } from "./machine.js";
import { qemuOpts } from "./opts.js";

export interface SharedFsOptions {
  socketPath: string;
  tag: string;
}

export function renderSharedFs(opts: SharedFsOptions, transport: VirtioTransport): string[] {
  return [
    "-chardev",
    qemuOpts("socket", { id: "fs0", path: opts.socketPath }),
    "-device",
    qemuOpts(virtioDevice("vhost-user-fs", transport), { chardev: "fs0", tag: opts.tag }),
  ];
}
