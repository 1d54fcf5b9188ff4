// One process in a container (the init process or an exec'd one), run as a foreground crun
// command that is the agent's own child: its exit status is the container process's status.
//
// Terminal mode: crun needs a terminal on its own stdin to hand a pty to the container without a
// console socket, and receiving the pty master over a console socket needs SCM_RIGHTS, which Node
// cannot do. So crun runs under util-linux `script`, which gives it a pty; crun puts that pty in
// raw mode and relays it to the container's own pty. Window size is set on the container's pty
// (its fd 0, through /proc) with `stty`.
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { constants } from "node:os";
import { KataError } from "../../util/errors.js";
import { run } from "../../util/exec.js";
import { deliverWhenHandled, wouldDropUntilHandled } from "./ns-init-signal.js";
import { OutputBuffer } from "./output-buffer.js";
import { waitForPidFile } from "./pid-file.js";
import { checkOp, checkTransition, type ProcessState } from "./process-state.js";
import { killTree, processTree } from "./process-tree.js";
import { startTimeoutMs, stuckStartError } from "./stuck-start.js";

export interface ExitInfo {
  /** Exit code, or 128 + signal number when the process was killed by a signal. */
  status: number;
  exitedAt: Date;
}

export interface ProcessTools {
  /** util-linux script, used to give crun a terminal in terminal mode. */
  script: string;
  stty: string;
}

export interface ProcessOptions {
  containerId: string;
  execId: string;
  /** The full crun command line (crun run ... or crun exec ...). */
  argv: string[];
  pidFile: string;
  logFile: string;
  terminal: boolean;
  openStdin: boolean;
  tools: ProcessTools;
  /** How long crun may take to write its pid file when the caller has no deadline (default 120 s). */
  startTimeoutMs?: number;
  /** The guest kernel's log, read for bug reports when a start is stuck (undefined: not read). */
  kernelLog?: string | undefined;
}

export class ContainerProcess {
  readonly stdout = new OutputBuffer();
  readonly stderr = new OutputBuffer();
  private stateValue: ProcessState = "created";
  private child: ChildProcess | undefined;
  private pidValue = 0;
  private exitInfo: ExitInfo | undefined;
  private exitWaiters: ((e: ExitInfo) => void)[] = [];
  private stdinClosed = false;
  /** Signals that came while crun was still starting (no pid yet): sent once the pid is known. */
  private earlySignals: number[] = [];

  constructor(private readonly opts: ProcessOptions) {}

  get execId(): string {
    return this.opts.execId;
  }
  get state(): ProcessState {
    return this.stateValue;
  }
  get pid(): number {
    return this.pidValue;
  }
  get terminal(): boolean {
    return this.opts.terminal;
  }
  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  private get what(): string {
    return this.opts.execId === "" ? `container ${this.opts.containerId}` : `process ${this.opts.execId} of ${this.opts.containerId}`;
  }

  /**
   * Spawns crun and resolves with the container process's pid once crun has written it. `deadline`
   * (Date.now() scale) is the caller's: a crun that has neither written its pid nor exited by a
   * margin before it is killed, with everything it started, and the error says why it was stuck.
   */
  async start(deadline?: number): Promise<number> {
    checkOp(this.what, this.stateValue, "start");
    const [file, ...args] = this.opts.terminal ? this.scriptArgv() : this.opts.argv;
    // In terminal mode `script` always gets a stdin pipe: at EOF it would end the session.
    const stdinMode = this.opts.openStdin || this.opts.terminal ? "pipe" : "ignore";
    const child = spawn(file!, args, { stdio: [stdinMode, "pipe", "pipe"] });
    this.child = child;
    child.stdin?.on("error", () => undefined); // EPIPE once the process is gone: WriteStdin reports it
    this.stdout.attach(child.stdout);
    this.stderr.attach(child.stderr);
    let spawnError: Error | undefined;
    const stopped = new Promise<void>((resolve) => {
      child.once("error", (err) => {
        spawnError = err;
        resolve();
      });
      child.once("exit", () => resolve());
    });
    child.once("exit", (code, signal) => {
      const status = code ?? 128 + (signal ? constants.signals[signal] : 0);
      this.markExited(status);
    });
    this.transition("running");

    const timeoutMs = startTimeoutMs(this.opts.startTimeoutMs, deadline);
    const waited = await waitForPidFile(this.opts.pidFile, { stopped, timeoutMs });
    if (waited.kind === "pid") {
      this.pidValue = waited.pid;
      this.deliverEarlySignals();
      return waited.pid;
    }
    if (waited.kind === "timed-out") {
      throw await stuckStartError({ what: this.what, crunPid: child.pid, timeoutMs, logFile: this.opts.logFile, kernelLog: this.opts.kernelLog });
    }
    if (spawnError !== undefined) {
      this.markExited(127);
      throw new KataError("NOT_FOUND", `cannot run ${file}: ${spawnError.message}`, { cause: spawnError });
    }
    const log = await readFile(this.opts.logFile, "utf8").catch(() => "");
    throw new KataError("FAILED_PRECONDITION", `crun could not start ${this.what} (status ${this.exitInfo?.status}): ${log.trim() || "no log"}`);
  }

  /** Resolves when the process has exited (also for a process that never started). */
  wait(signal?: AbortSignal): Promise<ExitInfo> {
    if (this.exitInfo !== undefined) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.exitWaiters = this.exitWaiters.filter((w) => w !== done);
        reject(new KataError("CANCELLED", `stopped waiting for ${this.what}`));
      };
      const done = (e: ExitInfo): void => {
        signal?.removeEventListener("abort", onAbort);
        resolve(e);
      };
      this.exitWaiters.push(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  signal(sig: number): void {
    checkOp(this.what, this.stateValue, "signal");
    if (this.stateValue === "created") {
      // Never ran: a kill simply means it never will (containerd kills created tasks on stop).
      this.markExited(128 + sig);
      return;
    }
    if (this.pidValue === 0) {
      // crun is still creating it. Never process.kill(0): that is the agent's own process group.
      this.signalWhileStarting(sig);
      return;
    }
    try {
      process.kill(this.pidValue, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") throw new KataError("NOT_FOUND", `${this.what} has already exited`);
      throw new KataError("INTERNAL", `cannot signal ${this.what}`, { cause: err });
    }
  }

  /**
   * signal(), except that a signal the kernel would drop because this process is a PID namespace
   * init without a handler for it yet is held and delivered once it has one (ns-init-signal.ts).
   */
  async signalOrHold(sig: number): Promise<void> {
    checkOp(this.what, this.stateValue, "signal");
    if (this.stateValue === "running" && this.pidValue !== 0 && (await wouldDropUntilHandled(this.pidValue, sig))) {
      void deliverWhenHandled(this.pidValue, sig, () => this.exitInfo !== undefined);
      return;
    }
    this.signal(sig);
  }

  /** SIGKILL ends crun and what it started now; any other signal waits for the container process. */
  private signalWhileStarting(sig: number): void {
    if (sig !== 9) {
      this.earlySignals.push(sig);
      return;
    }
    const crun = this.child?.pid;
    if (crun !== undefined) void processTree(crun).then((tree) => killTree(tree, 0));
  }

  private deliverEarlySignals(): void {
    const sigs = this.earlySignals;
    this.earlySignals = [];
    for (const sig of sigs) void this.signalOrHold(sig).catch(() => undefined); // NOT_FOUND: it already ended
  }

  writeStdin(data: Uint8Array): Promise<number> {
    checkOp(this.what, this.stateValue, "writeStdin");
    const stdin = this.child?.stdin;
    if (!this.opts.openStdin || this.stdinClosed || stdin === null || stdin === undefined) {
      return Promise.reject(new KataError("FAILED_PRECONDITION", `${this.what} has no open stdin`));
    }
    return new Promise((resolve, reject) => {
      stdin.write(data, (err) => {
        if (err) reject(new KataError("FAILED_PRECONDITION", `stdin of ${this.what} is closed`, { cause: err }));
        else resolve(data.length);
      });
    });
  }

  closeStdin(): void {
    checkOp(this.what, this.stateValue, "closeStdin");
    this.stdinClosed = true;
    if (this.opts.terminal && this.exitInfo === undefined && this.child?.stdin) {
      // A terminal has no end of file; the line discipline's EOF character (^D) is how a shell sees it.
      this.child.stdin.write(Buffer.from([4]));
    }
    this.child?.stdin?.end();
  }

  async resize(rows: number, cols: number): Promise<void> {
    checkOp(this.what, this.stateValue, "resize");
    if (!this.opts.terminal) throw new KataError("FAILED_PRECONDITION", `${this.what} has no terminal to resize`);
    await run(this.opts.tools.stty, ["-F", `/proc/${this.pidValue}/fd/0`, "rows", String(rows), "cols", String(cols)], {
      timeoutMs: 10_000,
    });
  }

  private scriptArgv(): string[] {
    // script(1) takes one shell command string; each argument is single-quoted, so nothing in
    // them (spaces, quotes, $) is interpreted by the shell.
    const cmd = `exec ${this.opts.argv.map(shellQuote).join(" ")}`;
    return [this.opts.tools.script, "-q", "-e", "-c", cmd, "/dev/null"];
  }

  private transition(to: ProcessState): void {
    checkTransition(this.what, this.stateValue, to);
    this.stateValue = to;
  }

  private markExited(status: number): void {
    if (this.exitInfo !== undefined) return;
    this.exitInfo = { status, exitedAt: new Date() };
    this.stateValue = "exited";
    if (this.child === undefined) {
      this.stdout.end();
      this.stderr.end();
    }
    const ws = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of ws) w(this.exitInfo);
  }
}

export function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}
