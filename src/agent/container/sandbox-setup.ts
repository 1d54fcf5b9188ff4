// CreateSandbox/DestroySandbox in the guest: hostname, DNS, the guest clock, the virtio-fs share
// and any extra mounts, undone in reverse order on destroy. Node has no mount(2), so mounts go
// through the guest's mount/umount tools.
import { mkdir, writeFile } from "node:fs/promises";
import { run } from "../../util/exec.js";
import { isBindMount } from "../../protocol/contract/guest.js";
import { KataError } from "../../util/errors.js";
import { splitDevSize, waitForDeviceSize } from "./block-device.js";
import { applySysctls } from "./sysctl.js";

export interface GuestMount {
  source: string;
  target: string;
  fstype: string;
  options: string[];
}

export interface SandboxSetupInput {
  sandboxId: string;
  hostname: string;
  dns: string[];
  sharedFsTag: string;
  hostTime: Date | undefined;
  mounts: GuestMount[];
  /** The pod's linux.sysctl: applied before anything else can depend on it. */
  sysctls?: Record<string, string>;
}

export interface SandboxPaths {
  sharedDir: string;
  resolvConf: string;
  hostnameFile: string;
  /** Where sysctls are written (default /proc/sys). */
  procSys?: string;
}

export async function mountOne(m: GuestMount): Promise<void> {
  if (!m.target.startsWith("/")) throw new KataError("INVALID_ARGUMENT", `mount target ${JSON.stringify(m.target)} must be absolute`);
  await mkdir(m.target, { recursive: true });
  const isBind = isBindMount({ type: m.fstype, options: m.options });
  const devSize = splitDevSize(m.options);
  if (devSize.bytes !== undefined) await waitForDeviceSize(m.source, devSize.bytes);
  const opts = devSize.options.filter((o) => o !== "bind" && o !== "rbind");
  // An overlay's upper and work dirs must exist (on the tmpfs mounted just before it).
  if (m.fstype === "overlay") {
    for (const o of opts) if (o.startsWith("upperdir=") || o.startsWith("workdir=")) await mkdir(o.slice(o.indexOf("=") + 1), { recursive: true });
  }
  const args = isBind
    ? [m.options.includes("rbind") ? "--rbind" : "--bind", m.source, m.target]
    : ["-t", m.fstype, ...(opts.length > 0 ? ["-o", opts.join(",")] : []), m.source, m.target];
  await run("mount", args, { timeoutMs: 30_000 });
  // A read-only bind needs a remount: the first mount ignores "ro" for binds.
  if (isBind && opts.includes("ro")) await run("mount", ["-o", "remount,bind,ro", m.target], { timeoutMs: 30_000 });
}

export class GuestSandbox {
  private mounted: string[] = [];
  private readonly containerMounts = new Map<string, string[]>();
  private id: string | undefined;

  constructor(private readonly paths: SandboxPaths) {}

  get sandboxId(): string | undefined {
    return this.id;
  }

  async create(input: SandboxSetupInput): Promise<void> {
    if (this.id !== undefined) throw new KataError("ALREADY_EXISTS", `the sandbox ${this.id} is already set up in this VM`);
    this.id = input.sandboxId;
    try {
      await applySysctls(input.sysctls ?? {}, this.paths.procSys);
      if (input.hostname !== "") await writeFile(this.paths.hostnameFile, input.hostname);
      if (input.dns.length > 0) await writeFile(this.paths.resolvConf, input.dns.map((l) => `${l}\n`).join(""));
      if (input.hostTime !== undefined) {
        // The guest has no synchronised clock; start from the host's (best effort: date may refuse).
        await run("date", ["-u", "-s", `@${Math.floor(input.hostTime.getTime() / 1000)}`], { timeoutMs: 10_000, allowNonZero: true });
      }
      if (input.sharedFsTag !== "") {
        await this.mount({ source: input.sharedFsTag, target: this.paths.sharedDir, fstype: "virtiofs", options: [] });
      }
      for (const m of input.mounts) await this.mount(m);
    } catch (err) {
      await this.destroy().catch(() => undefined);
      throw err;
    }
  }

  /** Mounts a container needs before it is created (e.g. its rootfs); undone by unmountContainer. */
  async mountForContainer(containerId: string, mounts: GuestMount[]): Promise<void> {
    const done = this.containerMounts.get(containerId) ?? [];
    this.containerMounts.set(containerId, done);
    for (const m of mounts) {
      await mountOne(m);
      done.push(m.target);
    }
  }

  async unmountContainer(containerId: string): Promise<void> {
    const targets = this.containerMounts.get(containerId) ?? [];
    this.containerMounts.delete(containerId);
    for (const t of targets.reverse()) await run("umount", ["-l", t], { timeoutMs: 30_000 });
  }

  async destroy(): Promise<void> {
    const failures: unknown[] = [];
    for (const id of [...this.containerMounts.keys()]) await this.unmountContainer(id).catch((e: unknown) => failures.push(e));
    for (const target of this.mounted.reverse()) {
      await run("umount", ["-l", target], { timeoutMs: 30_000 }).catch((e: unknown) => failures.push(e));
    }
    this.mounted = [];
    this.id = undefined;
    if (failures.length > 0) throw new KataError("INTERNAL", `could not unmount ${failures.length} sandbox mount(s)`, { cause: failures[0] });
  }

  private async mount(m: GuestMount): Promise<void> {
    await mountOne(m);
    this.mounted.push(m.target);
  }
}
