// Keeps a container's virtio-fs submounts (its rootfs, its volume directories) alive in the agent's
// own mount namespace, so that they never end together with the container.
//
// Why: each host bind mount in the share is a submount in the guest (virtiofsd's
// announce_submounts), made by the kernel when a path walk first crosses it. crun's child is the
// first to walk into the rootfs, after it has unshared its mount namespace, so the submount used
// to exist only in the container's namespace, and the container's last exit dropped its superblock
// while requests on it were still in flight (a killed process's readahead, the release of its
// files). The 6.1 guest kernel then warns "VFS: Busy inodes after unmount of virtiofs" and, when
// such a request completes, the virtio-fs completion worker takes a general protection fault on
// the freed inode (fuse_readpages_end). That worker is then dead: every later virtio-fs request
// waits forever, the next `crun run` never writes its pid, and StartContainer hangs. A StopContainer
// right after StartContainer (the app still paging itself in) made it likely: 3 hangs in about 140
// such rounds on the loaded host before, none in 200 after (docs/containers.md). Fix: the agent opens those directories before crun runs (which also
// makes the submount in the agent's namespace), and lets them go only once the FUSE connection has
// no request in flight, so the superblock ends with nothing pending.
import { open, readdir, readFile, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "../../util/exec.js";
import { log } from "../log.js";
import type { OciSpec } from "../../protocol/contract/oci.js";

export interface SharePinConfig {
  /** The FUSE control filesystem's connections dir (fusectl), mounted by the agent if need be. */
  fuseConnections: string;
  /** How long a release waits for a moment with no FUSE request in flight before keeping the pin. */
  idleWaitMs?: number;
}

/** A spec's rootfs and bind-mount sources that lie under one of `roots` (the share): candidate submounts. */
export function sharedPaths(spec: OciSpec, roots: string[]): string[] {
  const under = (p: string): boolean => roots.some((root) => p.startsWith(root.endsWith("/") ? root : `${root}/`));
  const binds = (spec.mounts ?? []).filter((m) => m.type === "bind" || m.options?.includes("bind") || m.options?.includes("rbind"));
  return [spec.root?.path ?? "", ...binds.map((m) => m.source ?? "")].filter((p) => p !== "" && under(p));
}

interface Pin {
  dirs: string[];
  handles: FileHandle[];
}

export class SharePins {
  private readonly pins = new Map<string, Pin>();
  private fusectl: Promise<boolean> | undefined;

  constructor(private readonly cfg: SharePinConfig) {}

  /** Opens each directory in `dirs` (files and missing paths are skipped) and holds it open. */
  async pin(containerId: string, dirs: string[]): Promise<void> {
    const pin = this.pins.get(containerId) ?? { dirs: [], handles: [] };
    this.pins.set(containerId, pin);
    for (const dir of dirs) {
      const st = await stat(dir).catch(() => undefined);
      if (st === undefined || !st.isDirectory() || pin.dirs.includes(dir)) continue;
      pin.handles.push(await open(dir, "r"));
      pin.dirs.push(dir);
    }
  }

  /**
   * Closes the container's directories, waits for an instant with no FUSE request in flight (the
   * directories' own release included), then unmounts its submounts from the agent's namespace so
   * they end idle. Without such an instant (or without fusectl) they stay until the VM ends: a
   * leak of one superblock beats a kernel oops.
   */
  async release(containerId: string): Promise<void> {
    const pin = this.pins.get(containerId);
    if (pin === undefined) return;
    this.pins.delete(containerId);
    for (const h of pin.handles) await h.close().catch(() => undefined);
    if (!(await this.waitIdle())) {
      log(`virtio-fs submounts of container ${containerId} stay until the VM ends: no moment without a FUSE request in flight (or no fusectl)`);
      return;
    }
    // One umount for all (each process costs the guest's vCPU under TCG), deepest first: a volume
    // inside the rootfs before the rootfs. A path the host already removed is gone from the guest
    // too: looking it up detached its submount (umount then says so and goes on).
    await run("umount", ["-l", ...[...pin.dirs].reverse()], { timeoutMs: 30_000, allowNonZero: true });
  }

  async releaseAll(): Promise<void> {
    for (const id of [...this.pins.keys()]) await this.release(id);
  }

  private async waitIdle(): Promise<boolean> {
    if (!(await this.mountFusectl())) return false;
    const deadline = Date.now() + (this.cfg.idleWaitMs ?? 30_000);
    do {
      if ((await this.inFlight()) === 0) return true;
      await sleep(250); // the guest may have one vCPU: the next container's start needs it more
    } while (Date.now() < deadline);
    return false;
  }

  /** Requests in flight on every FUSE connection (fusectl's `waiting`). */
  private async inFlight(): Promise<number> {
    let total = 0;
    for (const conn of await readdir(this.cfg.fuseConnections).catch(() => [] as string[])) {
      const text = await readFile(join(this.cfg.fuseConnections, conn, "waiting"), "utf8").catch(() => "0");
      total += Number.parseInt(text, 10) || 0;
    }
    return total;
  }

  private mountFusectl(): Promise<boolean> {
    this.fusectl ??= (async () => {
      const mounts = await readFile("/proc/self/mounts", "utf8").catch(() => "");
      if (mounts.split("\n").some((l) => l.split(" ")[1] === this.cfg.fuseConnections)) return true;
      return run("mount", ["-t", "fusectl", "fusectl", this.cfg.fuseConnections], { timeoutMs: 10_000 }).then(
        () => true,
        () => false,
      );
    })();
    return this.fusectl;
  }
}
