// What every VMM driver's VM does the same way, so each driver holds only what is its VMM's: the
// lifecycle state machine; setup in order (state dir, capped console, VMM process, the driver's
// control channel) with a deadline and a fail-fast on the VMM's early exit; the exit watch; stop
// (the driver's graceful request, then SIGTERM, then SIGKILL by the deadline; always reaped); and
// teardown in the reverse order on every path: a failed start, stop(), or the guest ending alone.
// The VM owns its state dir and removes it when it ends, after keeping the console tail.
import { mkdir, readdir, rm } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import { createLogger } from "../util/log.js";
import { startInCgroups } from "../util/start-in-cgroups.js";
import { ConsoleLog } from "./console-log.js";
import { readTail } from "./console-tail.js";
import { VmLifecycle } from "./lifecycle.js";
import type { ResolvedAccel, StopOptions, Vm, VmConfig, VmExit, VmState } from "./types.js";
import { VmmProcess, type ProcessExit } from "./vmm-process.js";
import { VmFilesView, type VmFiles } from "./vm-files.js";

const log = createLogger("hypervisor");

/** How the driver's VMM is started. */
export interface VmmCommand {
  binary: string;
  args: string[];
  /** What to tell the user when the binary cannot be started. */
  installHint?: string;
  /** The VMM's environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /**
   * Where the guest serial console arrives: a unix socket the VMM connects to (listened on before
   * the spawn), or the VMM's stdout.
   */
  console: { socketPath: string } | "stdout";
}

export interface VmmVmOptions {
  /** How long the VMM may take to serve its control channel (QMP, REST API) after spawn. */
  startTimeoutMs?: number;
  /** Cap of console.log (and of the rotated console.log.1); default 1 MiB. */
  consoleLogMaxBytes?: number;
}

const defaultStopTimeoutMs = 5000;
const defaultStartTimeoutMs = 10_000;

export abstract class VmmVm extends VmFilesView implements Vm {
  readonly id: string;
  abstract readonly accel: ResolvedAccel | undefined;
  /** The console's last bytes, kept after the state dir is gone. */
  lastConsoleTail = "";
  protected proc: VmmProcess | undefined;
  protected stopRequested: "quit" | "kill" | undefined;
  /** Only a state dir this VM created is removed by it (never another VM's). */
  protected ownsStateDir = false;
  /** Handed to another process: its end is the new owner's to report. */
  protected detached = false;
  protected readonly lifecycle: VmLifecycle;
  private console: ConsoleLog | undefined;
  private starting: Promise<void> | undefined;
  private resolveEnded!: (exit: VmExit) => void;
  private readonly endedPromise: Promise<VmExit>;

  /** For messages: "QEMU", "cloud-hypervisor", "firecracker". */
  protected abstract readonly vmmName: string;
  /** Settle what the spawn needs (accelerator, argv). Runs after the state dir exists. */
  protected abstract command(): Promise<VmmCommand>;
  /** Reach the VMM's control channel and boot the guest; `deadline` bounds the wait for the channel. */
  protected abstract control(deadline: number): Promise<void>;
  /** Ask the VMM to stop; false when it has no such request (then SIGTERM at once). */
  protected abstract askToQuit(timeoutMs: number): Promise<boolean>;
  /** How the VM ended, from the process exit and the VMM's own account. */
  protected abstract classify(pexit: ProcessExit, consoleTail: string | undefined): Pick<VmExit, "reason" | "vmmReason">;
  /** Close the control channel (the VMM is gone or going). */
  protected closeControl(): void {
    // nothing by default
  }

  constructor(
    protected readonly config: VmConfig,
    files: VmFiles,
    protected readonly opts: VmmVmOptions = {},
  ) {
    super(files);
    this.id = config.id;
    this.lifecycle = new VmLifecycle(config.id);
    this.endedPromise = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  get state(): VmState {
    return this.lifecycle.state;
  }
  get pid(): number | undefined {
    return this.proc?.hasExited === false ? this.proc.pid : undefined;
  }
  /** Bytes the guest wrote to its console so far (the log keeps at most the last 2 x its cap). */
  get consoleBytes(): number {
    return this.console?.bytesReceived ?? 0;
  }

  /** The VMM's last stderr lines (why it refused to start). */
  vmmStderr(): string {
    return this.proc?.stderr() ?? "";
  }

  start(): Promise<void> {
    if (!this.lifecycle.canMove("starting")) return Promise.reject(this.lifecycle.refusal("start"));
    this.lifecycle.move("starting", "start");
    this.starting = this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    try {
      await this.makeStateDir();
      this.console = await ConsoleLog.create(this.consoleLogPath, this.opts.consoleLogMaxBytes);
      const cmd = await this.command();
      if (cmd.console !== "stdout") await this.console.listen(cmd.console.socketPath);
      log.debug({ vm: this.id, vmm: this.vmmName, args: cmd.args }, "spawning the VMM");
      const spawnOpts = {
        ...(cmd.installHint === undefined ? {} : { installHint: cmd.installHint }),
        ...(cmd.env === undefined ? {} : { env: cmd.env }),
        stdout: cmd.console === "stdout" ? "pipe" as const : "ignore" as const,
      };
      // nsenter joins the netns and execs the VMM, as does the cgroup placement: same pid, so
      // signals and the group kill still reach it.
      const netns = this.config.netnsPath;
      const inNetns = netns === undefined ? cmd : { binary: "nsenter", args: [`--net=${netns}`, "--", cmd.binary, ...cmd.args] };
      const placed = startInCgroups(this.config.cgroupDirs ?? [], inNetns.binary, inNetns.args);
      this.proc = await VmmProcess.spawn(placed.binary, placed.args, spawnOpts);
      const stdout = this.proc.stdout;
      if (cmd.console === "stdout" && stdout !== null) this.console.attach(stdout);
      this.proc.exited
        .then((exit) => this.onExit(exit))
        .catch((err: unknown) => log.error({ vm: this.id, err }, "cleaning up after the VMM exit failed"));
      await this.control(Date.now() + (this.opts.startTimeoutMs ?? defaultStartTimeoutMs));
    } catch (err) {
      await this.teardown("kill");
      throw err;
    }
    if (this.lifecycle.state === "starting") this.lifecycle.move("running", "start");
  }

  stop(opts: StopOptions = {}): Promise<VmExit> {
    const state = this.lifecycle.state;
    if (state === "created") {
      this.lifecycle.move("stopped", "stop");
      this.resolveEnded({ reason: "stopped", exitCode: null, signal: null });
      return this.endedPromise;
    }
    if (state === "stopped" || state === "stopping") return this.endedPromise;
    // Mid-start: let start finish (or fail and clean up) first, so no half-spawned VMM escapes.
    if (state === "starting") return (this.starting ?? Promise.resolve()).catch(() => undefined).then(() => this.stop(opts));
    this.lifecycle.move("stopping", "stop");
    return this.shutdown(opts.timeoutMs ?? defaultStopTimeoutMs);
  }

  wait(): Promise<VmExit> {
    return this.endedPromise;
  }

  /** The driver's graceful request, then SIGTERM, then SIGKILL to the group by the deadline; always reaped. */
  private async shutdown(timeoutMs: number): Promise<VmExit> {
    const proc = this.proc;
    if (proc === undefined) return this.teardown("kill");
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(0, deadline - Date.now());
    this.stopRequested = "quit";
    const asked = await this.askToQuit(Math.min(left(), 2000)).catch((err: unknown) => {
      log.debug({ vm: this.id, err }, "graceful VMM stop refused");
      return false;
    });
    if (!asked || (await proc.waitFor(Math.max(left() - 500, 0))) === undefined) {
      proc.signal("SIGTERM");
      if ((await proc.waitFor(Math.min(left(), 500))) === undefined) {
        this.stopRequested = "kill";
        log.warn({ vm: this.id, vmm: this.vmmName, pid: proc.pid }, "the VMM did not exit in time; killing it");
      }
    }
    return this.teardown(this.stopRequested);
  }

  /** Kill if still running, reap, release everything; resolves with how the VM ended. */
  private async teardown(mode: "quit" | "kill"): Promise<VmExit> {
    if (mode === "kill") this.stopRequested = "kill";
    if (this.proc !== undefined) {
      if (!this.proc.hasExited) await this.proc.kill();
      return this.endedPromise;
    }
    await this.release();
    if (this.lifecycle.state !== "stopped") this.lifecycle.move("stopped", "stop");
    const exit: VmExit = { reason: "stopped", exitCode: null, signal: null };
    this.resolveEnded(exit);
    return exit;
  }

  private async onExit(pexit: ProcessExit): Promise<VmExit> {
    await this.console?.close(); // the VMM is gone: its last console bytes reach the file first
    this.lastConsoleTail = await readTail(this.consoleLogPath, 4096);
    // The console is read first: a guest reset is told apart from a panic by it (console-tail.ts).
    const exit: VmExit = { ...this.classify(pexit, this.lastConsoleTail), exitCode: pexit.code, signal: pexit.signal };
    if (exit.vmmReason === undefined) delete exit.vmmReason;
    exit.consoleTail = this.lastConsoleTail;
    if ((exit.reason === "crashed" || exit.reason === "guest-panic") && !this.detached) {
      log.warn({ vm: this.id, vmm: this.vmmName, exit, stderr: this.proc?.stderr() }, "VM ended unexpectedly");
    }
    await this.release();
    if (this.lifecycle.state !== "stopped") this.lifecycle.move("stopped", "exit");
    this.resolveEnded(exit);
    return exit;
  }

  private async release(): Promise<void> {
    this.closeControl();
    await this.console?.close(0);
    if (this.ownsStateDir) await rm(this.stateDir, { recursive: true, force: true });
  }

  private async makeStateDir(): Promise<void> {
    const existing = await readdir(this.stateDir).catch(() => undefined);
    if (existing !== undefined && existing.length > 0) {
      throw new KataError(
        "ALREADY_EXISTS",
        `VM state dir ${this.stateDir} already exists and is not empty (another VM, or a leftover: stop it or remove the dir)`,
      );
    }
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    this.ownsStateDir = true;
  }

  /**
   * Retry `attempt` every 20 ms until it succeeds, failing fast (with the VMM's own words) when the
   * VMM exits, and with DEADLINE_EXCEEDED naming `what` at the deadline. `retryable` says which
   * errors mean "not ready yet".
   */
  protected async untilReady<T>(what: string, deadline: number, attempt: (timeoutMs: number) => Promise<T>, retryable: (err: unknown) => boolean = () => true): Promise<T> {
    const timeoutMs = Math.max(deadline - Date.now(), 0);
    for (;;) {
      if (this.proc?.hasExited !== false) {
        throw new KataError("INTERNAL", `${this.vmmName} exited during start-up: ${this.vmmStderr() || "no message"}`);
      }
      try {
        return await attempt(Math.max(deadline - Date.now(), 1));
      } catch (err) {
        if (Date.now() >= deadline) {
          throw new KataError("DEADLINE_EXCEEDED", `${this.vmmName} did not ${what} within ${timeoutMs} ms`, { cause: err });
        }
        if (!retryable(err)) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}
