// virtiofsd (the C daemon shipped with QEMU 7.2) serving the sandbox's shared dir to the guest
// over a vhost-user socket. It exits by itself when QEMU disconnects; stop() also kills it. Its
// exit is reported (`exited`) so the sandbox can tell a requested stop from a death, and the pid
// file it leaves under /run/virtiofsd is removed once it has gone. Once QEMU connects, virtiofsd
// forks a worker into new namespaces and waits for it: it runs in a process group of its own, and
// the group is killed when the daemon exits, so a worker never outlives a killed parent.
import { spawn, type ChildProcess } from "node:child_process";
import { open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KataError } from "../util/errors.js";
import { startInCgroups } from "../util/start-in-cgroups.js";

export const VIRTIOFSD = process.env.KATA_TS_VIRTIOFSD ?? "/usr/lib/qemu/virtiofsd";

/** Where QEMU's virtiofsd writes its pid file (QEMU's local state dir; not configurable). */
const PID_FILE_DIR = "/run/virtiofsd";

/**
 * The pid file virtiofsd writes for a socket path (it locks the socket path with it): the path with
 * every "/" turned into ".", plus ".pid". virtiofsd never removes it; it has no option to skip it.
 */
export function virtiofsdPidFile(socketPath: string): string {
  return join(PID_FILE_DIR, `${socketPath.replaceAll("/", ".")}.pid`);
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is empty: nothing left
  }
}

export interface VirtiofsdExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stop() asked for it (otherwise it died, or exited when QEMU went away). */
  requested: boolean;
}

export class Virtiofsd {
  /** Resolves once the daemon has exited and its pid file is removed. */
  readonly exited: Promise<VirtiofsdExit>;
  private stopRequested = false;

  private constructor(
    private readonly child: ChildProcess,
    socketPath: string,
  ) {
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        const exit = { code, signal, requested: this.stopRequested };
        if (child.pid !== undefined) killGroup(child.pid);
        void rm(virtiofsdPidFile(socketPath), { force: true })
          .catch(() => undefined)
          .then(() => resolve(exit));
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** `cgroupDirs`: cgroupfs dirs (one per hierarchy) it starts in (src/util/start-in-cgroups.ts); default the caller's. */
  static async start(opts: { sharedDir: string; socketPath: string; logPath: string; timeoutMs?: number; cgroupDirs?: readonly string[] }): Promise<Virtiofsd> {
    // A socket left by an earlier virtiofsd (a retried boot) would pass for this one's below.
    await rm(opts.socketPath, { force: true });
    const log = await open(opts.logPath, "a");
    const args = [
      `--socket-path=${opts.socketPath}`,
      "-o", `source=${opts.sharedDir}`,
      // Metadata may change on the host (binds appear, rootfs files change, kubelet swaps a
      // ConfigMap's ..data): entries and attributes expire after 1 s, as with cache=auto. But the
      // file data the guest has cached is kept across opens (cache=always sets FOPEN_KEEP_CACHE;
      // auto drops a file's pages at every open) and dropped when the refreshed attributes show a
      // new size or mtime (FUSE auto_inval_data). With auto, every exec read the binary and its
      // libraries over virtio-fs again into new guest pages, which TCG then translated anew:
      // ~90 ms of QEMU CPU per exec of `true` (docs/containers.md "Where an exec goes").
      "-o", "cache=always",
      "-o", "timeout=1",
      // Each bind mount in the share shows up as its own mount in the guest (unique inode numbers).
      "-o", "announce_submounts",
    ];
    const cmd = startInCgroups(opts.cgroupDirs ?? [], VIRTIOFSD, args);
    const child = spawn(cmd.binary, cmd.args, { stdio: ["ignore", log.fd, log.fd], detached: true });
    await log.close();
    const d = new Virtiofsd(child, opts.socketPath);
    const failed = new Promise<Error>((resolve) => child.once("error", resolve));
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      const st = await stat(opts.socketPath).catch(() => undefined);
      if (st?.isSocket()) return d;
      const err = await Promise.race([failed, sleep(20).then(() => undefined)]);
      if (err !== undefined) throw new KataError("NOT_FOUND", `cannot run ${VIRTIOFSD}: ${err.message}`, { cause: err });
      if (child.exitCode !== null || child.signalCode !== null) {
        await d.exited;
        throw new KataError("INTERNAL", `virtiofsd exited at start (status ${child.exitCode ?? child.signalCode}); see ${opts.logPath}`);
      }
      if (Date.now() > deadline) {
        await d.stop();
        throw new KataError("DEADLINE_EXCEEDED", `virtiofsd did not create ${opts.socketPath} in time; see ${opts.logPath}`);
      }
    }
  }

  /**
   * Let go of the daemon without stopping it (the pool hands a VM's virtiofsd to the pod's shim):
   * this process no longer waits for it or acts on its exit, so it can end while virtiofsd runs on.
   */
  release(): void {
    this.child.removeAllListeners("exit");
    this.child.unref();
  }

  /** SIGTERM, SIGKILL past the deadline; resolves once it has exited and its pid file is gone. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      await this.exited;
      return;
    }
    this.stopRequested = true;
    this.child.kill("SIGTERM");
    const t = sleep(timeoutMs).then(() => "timeout" as const);
    if ((await Promise.race([this.exited.then(() => "exited" as const), t])) === "timeout") {
      this.child.kill("SIGKILL");
    }
    await this.exited;
  }
}
