// CreateSandbox/DestroySandbox in the guest: hostname, DNS, the guest clock, the virtio-fs share
// and any extra mounts, undone in reverse order on destroy. Node has no mount(2), so mounts go
// through the guest's mount/umount tools. PrepareSandbox (a pooled VM, before any pod) does the
// pod-neutral part ahead: the clock and the still empty share, which CreateSandbox then keeps.
import { mkdir, writeFile } from "node:fs/promises";
import { run } from "../../util/exec.js";
import { syncClock } from "../clock.js";
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

/** PrepareSandbox: nothing of a pod. */
export interface SandboxPrepareInput {
  hostTime: Date | undefined;
  sharedFsTag: string;
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
  /** The share tag PrepareSandbox mounted (at paths.sharedDir). */
  private preparedShare: string | undefined;

  constructor(
    private readonly paths: SandboxPaths,
    private readonly clock: { sync: typeof syncClock } = { sync: syncClock },
  ) {}

  get sandboxId(): string | undefined {
    return this.id;
  }

  /**
   * Pod-neutral set-up of a VM booted before its pod: the clock, and the share mounted while it is
   * still empty (a host file bound into it later is looked up only once the pod asks for it, so no
   * negative lookup can be cached before). Only before CreateSandbox, and once.
   */
  async prepare(input: SandboxPrepareInput): Promise<void> {
    if (this.id !== undefined) throw new KataError("FAILED_PRECONDITION", `the sandbox ${this.id} is already set up in this VM: PrepareSandbox comes before CreateSandbox`);
    if (this.preparedShare !== undefined) throw new KataError("ALREADY_EXISTS", "this VM is already prepared");
    if (input.hostTime !== undefined) await this.clock.sync(input.hostTime);
    if (input.sharedFsTag !== "") {
      await this.mount({ source: input.sharedFsTag, target: this.paths.sharedDir, fstype: "virtiofs", options: [] });
      this.preparedShare = input.sharedFsTag;
    }
  }

  /** The share PrepareSandbox mounted, if any. */
  get prepared(): string | undefined {
    return this.preparedShare;
  }

  async create(input: SandboxSetupInput): Promise<void> {
    if (this.id !== undefined) throw new KataError("ALREADY_EXISTS", `the sandbox ${this.id} is already set up in this VM`);
    this.id = input.sandboxId;
    try {
      await applySysctls(input.sysctls ?? {}, this.paths.procSys);
      if (input.hostname !== "") await writeFile(this.paths.hostnameFile, input.hostname);
      if (input.dns.length > 0) await writeFile(this.paths.resolvConf, input.dns.map((l) => `${l}\n`).join(""));
      // Set only when off by more than a bound (clock.ts): a prepared VM's clock normally is not.
      if (input.hostTime !== undefined) await this.clock.sync(input.hostTime);
      if (input.sharedFsTag !== "" && input.sharedFsTag !== this.preparedShare) {
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
    this.preparedShare = undefined;
    this.id = undefined;
    if (failures.length > 0) throw new KataError("INTERNAL", `could not unmount ${failures.length} sandbox mount(s)`, { cause: failures[0] });
  }

  private async mount(m: GuestMount): Promise<void> {
    await mountOne(m);
    this.mounted.push(m.target);
  }
}
