// The stand-in Firecracker's real guest: the kernel, initrd, drives and boot arguments the driver
// configured, booted under QEMU (TCG; Firecracker itself needs KVM), so that what kata-ts puts on
// its drives is read by the real guest kernel and agent. Firecracker's devices become QEMU's:
// each drive a virtio-blk device in the order it was configured (root first, as Firecracker
// attaches them), the serial console the stand-in's stdout, and the hybrid vsock port 1024 the
// agent's virtio-serial port (the kata_ts.agent=vsock parameter is dropped so the agent serves
// that port). PATCH /drives/{id} becomes QMP: a new file node for the image, blockdev-reopen of
// the drive onto it, and block_resize to the image's size, which raises the virtio-blk
// config-change interrupt the guest kernel reads the new capacity from, as Firecracker's PATCH does.
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { mkdir, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { qemuArgs } from "../../../src/hypervisor/qemu/cmdline.js";
import { vmLayout, type VmLayout } from "../../../src/hypervisor/qemu/layout.js";
import { hostTscKhz } from "../../../src/hypervisor/qemu/host-tsc.js";
import { QmpClient } from "../../../src/hypervisor/qemu/qmp.js";
import { AGENT_CHANNEL_PARAM } from "../../../src/protocol/contract/guest.js";
import { qemuBinary } from "../../../src/hypervisor/qemu/probe.js";

export interface GuestDrive {
  id: string;
  path: string;
  readOnly: boolean;
}

export interface QemuGuestOptions {
  dir: string;
  kernel: string;
  initrd?: string | undefined;
  bootArgs: string;
  vcpus: number;
  memoryMiB: number;
  /** Root drive first, then the others in the order they were configured. */
  drives: GuestDrive[];
}

/** Firecracker's own kernel parameters: QEMU's driver renders its own (console, panic, reboot, TSC). */
const fcOwnParams = /^(console=|reboot=|panic=|pci=|cryptomgr\.notests$)/;

type Execute = (command: string, args?: unknown) => Promise<unknown>;

export class QemuGuest {
  private generation = 0;
  /** Drive id -> the file node added over QMP that it reads now. */
  private readonly fileNodes = new Map<string, string>();
  /** QEMU's exit code (null: killed by a signal). */
  readonly exited: Promise<number | null>;

  private constructor(
    private readonly layout: VmLayout,
    private readonly qemu: ChildProcess,
    /** QMP once QEMU serves it: InstanceStart is answered without waiting for it, as Firecracker answers at once. */
    private readonly qmp: Promise<QmpClient>,
    private readonly consoleServer: net.Server,
  ) {
    this.exited = new Promise((resolve) => qemu.once("exit", (code) => resolve(code)));
    qmp.catch(() => undefined); // a QEMU that never served QMP is reported by its exit

  }

  get agentSocketPath(): string {
    return this.layout.agentSocketPath;
  }

  static async start(o: QemuGuestOptions): Promise<QemuGuest> {
    await mkdir(o.dir, { recursive: true });
    const layout = vmLayout(o.dir);
    // QEMU's serial chardev connects to this socket; the stand-in prints it as Firecracker prints the console.
    const consoleServer = net.createServer((sock) => sock.pipe(process.stdout, { end: false }));
    await new Promise<void>((resolve) => consoleServer.listen(layout.consoleSocketPath, resolve));
    const [root, ...others] = o.drives;
    if (root === undefined) throw new Error("stand-in guest: no root drive configured");
    const kernelCmdline = o.bootArgs.split(/\s+/).filter((p) => p !== "" && !fcOwnParams.test(p) && !p.startsWith(`${AGENT_CHANNEL_PARAM}=`));
    const tsc = await hostTscKhz();
    const args = qemuArgs(
      { id: "standin", stateDir: o.dir, vcpus: o.vcpus, memoryMiB: o.memoryMiB, kernelPath: o.kernel, ...(o.initrd === undefined ? {} : { initrdPath: o.initrd }), rootfsPath: root.path, kernelCmdline, accel: "tcg" },
      layout,
      { accel: "tcg", seccomp: false, tcgTbSizeMiB: 32, ...(tsc === undefined ? {} : { guestTscKhz: tsc }) },
    );
    // The other drives right after the root's device, so the guest names them vdb, vdc, ... in order.
    const rootDevice = args.indexOf("virtio-blk-device,drive=rootfs");
    args.splice(rootDevice + 1, 0, ...others.flatMap((d) => slotDriveArgs(d)));
    const qemu = spawn(qemuBinary, args, { stdio: ["ignore", "ignore", "inherit"] });
    return new QemuGuest(layout, qemu, connectQmp(layout.qmpSocketPath, qemu), consoleServer);
  }

  /** PATCH /drives/{id} path_on_host, as the guest sees it. */
  async patchDrive(id: string, path: string): Promise<void> {
    const qmp = await this.qmp;
    const execute = qmp.execute.bind(qmp) as unknown as Execute;
    const file = `${id}-f${++this.generation}`;
    const size = (await stat(path)).size;
    await execute("blockdev-add", { driver: "file", "node-name": file, filename: path, "read-only": false });
    await execute("blockdev-reopen", { options: [{ driver: "raw", "node-name": id, file, "read-only": false }] });
    await execute("block_resize", { "node-name": id, size });
    // The file node of the command line went with the reopen; one added over QMP stays until deleted.
    const previous = this.fileNodes.get(id);
    if (previous !== undefined) await execute("blockdev-del", { "node-name": previous });
    this.fileNodes.set(id, file);
  }

  /** Connects a hybrid vsock stream to the agent's virtio-serial port. */
  connectAgent(): net.Socket {
    return net.createConnection(this.layout.agentSocketPath);
  }

  stop(): void {
    void this.qmp.then((q) => q.close(), () => undefined);
    this.qemu.kill("SIGKILL");
    this.consoleServer.close();
  }
}

async function connectQmp(socketPath: string, qemu: ChildProcess): Promise<QmpClient> {
  for (let i = 0; i < 1200 && qemu.exitCode === null; i++) {
    const qmp = await QmpClient.connect(socketPath, { timeoutMs: 1000 }).catch(() => undefined);
    if (qmp !== undefined) return qmp;
    await sleep(50);
  }
  throw new Error("stand-in guest: QEMU did not open its QMP socket");
}

/**
 * A placeholder-able drive: raw over a file node with its own name, so that PATCH can swap the
 * file. Opened writable in QEMU only so that block_resize may raise the capacity change (QEMU
 * refuses to resize a read-only node); the guest mounts it read-only and nothing writes it.
 */
function slotDriveArgs(d: GuestDrive): string[] {
  const blockdev = { "node-name": d.id, driver: "raw", "read-only": false, file: { driver: "file", "node-name": `${d.id}-f0`, filename: d.path, "read-only": false } };
  return ["-blockdev", JSON.stringify(blockdev), "-device", `virtio-blk-device,drive=${d.id}`];
}
