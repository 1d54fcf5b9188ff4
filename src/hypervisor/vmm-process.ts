// A VMM process (QEMU, cloud-hypervisor, firecracker): spawned in its own process group (so a kill
// reaches anything it started and a Ctrl-C aimed at our group does not reach it), stdin from
// /dev/null (an inherited terminal can stall it), stderr kept as a short tail for error messages. Every live VMM is remembered so that
// it is killed if this Node process exits without stopping it.
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import { KataError } from "../util/errors.js";

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous by necessity: "exit" handlers cannot await. SIGKILL the whole group.
  process.on("exit", () => {
    for (const pid of live) killGroup(pid, "SIGKILL");
  });
}

/** Signal the process group led by pid; false if it is already gone. */
export function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

const stderrTailBytes = 4096;

export interface SpawnOptions {
  /** "pipe": the VMM's stdout is read by this process (Firecracker and Cloud Hypervisor write the guest's serial console there). Default: discarded. */
  stdout?: "pipe" | "ignore";
  /** What to tell the user when the binary cannot be started. */
  installHint?: string;
  /** The VMM's environment; default this process's. */
  env?: NodeJS.ProcessEnv;
}

export class VmmProcess {
  readonly pid: number;
  /** Resolves when the process has exited and been reaped. */
  readonly exited: Promise<ProcessExit>;
  private stderrTail = "";
  private exitInfo: ProcessExit | undefined;

  private constructor(private readonly child: ChildProcess) {
    if (child.pid === undefined) throw new KataError("INTERNAL", "spawned VMM has no pid");
    this.pid = child.pid;
    live.add(this.pid);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-stderrTailBytes);
    });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(this.pid);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** Spawn and wait until the OS has started it (ENOENT etc. become NOT_FOUND/INTERNAL). */
  static async spawn(binary: string, args: readonly string[], opts: SpawnOptions = {}): Promise<VmmProcess> {
    installExitHook();
    const child = spawn(binary, args, { detached: true, stdio: ["ignore", opts.stdout ?? "ignore", "pipe"], ...(opts.env === undefined ? {} : { env: opts.env }) });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", (err: NodeJS.ErrnoException) => {
        const code = err.code === "ENOENT" ? "NOT_FOUND" : "INTERNAL";
        reject(new KataError(code, `cannot start ${binary}: ${err.message} (${opts.installHint ?? "install qemu-system-x86: kata-ts setup"})`, { cause: err }));
      });
    });
    return new VmmProcess(child);
  }

  /** The VMM's stdout, when spawned with `stdout: "pipe"`. */
  get stdout(): Readable | null {
    return this.child.stdout;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** The last lines the VMM printed on stderr (its error messages). */
  stderr(): string {
    return this.stderrTail.trim();
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.hasExited) killGroup(this.pid, signal);
  }

  /**
   * Another process owns it now (the VM pool handed it to a shim): not killed when this one exits,
   * and neither the child nor its stderr pipe keeps this process alive (its stderr is still read,
   * so the VMM never blocks on a full pipe while this process runs).
   */
  forget(): void {
    live.delete(this.pid);
    this.child.unref();
    (this.child.stderr as (Readable & { unref?: () => void }) | null)?.unref?.();
  }

  /** SIGKILL the group and wait for the reap. */
  async kill(): Promise<ProcessExit> {
    this.signal("SIGKILL");
    return this.exited;
  }

  /** Wait for exit up to timeoutMs; undefined if still running. */
  async waitFor(timeoutMs: number): Promise<ProcessExit | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
