// One QEMU microvm. Setup in order (state dir, QEMU process, QMP connection) and teardown in the
// reverse order on every path: a failed start, stop(), or the guest ending on its own. The VM owns
// its state dir and removes it when it ends, after keeping the console tail for diagnostics.
import { mkdir, readdir, rm } from "node:fs/promises";
import { KataError } from "../../util/errors.js";
import { createLogger } from "../../util/log.js";
import type { AgentEndpoint } from "../agent-channel/endpoint.js";
import { VmLifecycle } from "../lifecycle.js";
import type { ResolvedAccel, StopOptions, Vm, VmConfig, VmExit, VmState } from "../types.js";
import { qemuArgs, type QemuTuning } from "./cmdline.js";
import { ConsoleLog } from "./console-log.js";
import { readTail } from "../console-tail.js";
import type { VmLayout } from "./layout.js";
import { VmmProcess, type ProcessExit } from "../vmm-process.js";
import { QmpClient } from "./qmp.js";

const log = createLogger("hypervisor.qemu");

export interface QemuVmOptions {
  binary: string;
  /** Settles `auto` and the rest of the tuning just before spawning. */
  tuning: (config: VmConfig) => Promise<QemuTuning>;
  /** How long QEMU may take to open its QMP socket. */
  startTimeoutMs?: number;
  /** Cap of console.log (and of the rotated console.log.1); default 1 MiB. */
  consoleLogMaxBytes?: number;
}

const defaultStopTimeoutMs = 5000;

export class QemuVm implements Vm {
  readonly id: string;
  accel: ResolvedAccel | undefined;
  /** The exact argv QEMU was started with (for docs and diagnostics). */
  args: string[] = [];
  private readonly lifecycle: VmLifecycle;
  private proc: VmmProcess | undefined;
  private qmp: QmpClient | undefined;
  private console: ConsoleLog | undefined;
  private stopRequested: "quit" | "kill" | undefined;
  /** Only a state dir this VM created is removed by it (never another VM's). */
  private ownsStateDir = false;
  /** Handed to another process (detach()). */
  private detached = false;
  private starting: Promise<void> | undefined;
  private resolveEnded!: (exit: VmExit) => void;
  private readonly endedPromise: Promise<VmExit>;

  constructor(
    private readonly config: VmConfig,
    private readonly layout: VmLayout,
    private readonly opts: QemuVmOptions,
  ) {
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
  get stateDir(): string {
    return this.layout.stateDir;
  }
  get consoleLogPath(): string {
    return this.layout.consoleLogPath;
  }
  get agentSocketPath(): string {
    return this.layout.agentSocketPath;
  }
  get agentEndpoint(): AgentEndpoint {
    return { transport: "unix", path: this.layout.agentSocketPath };
  }
  get qmpSocketPath(): string {
    return this.layout.qmpSocketPath;
  }

  start(): Promise<void> {
    if (!this.lifecycle.canMove("starting")) {
      return Promise.reject(this.lifecycle.refusal("start"));
    }
    this.lifecycle.move("starting", "start");
    this.starting = this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    try {
      await this.makeStateDir();
      // Listening before QEMU starts: it connects its serial port here at start-up.
      this.console = await ConsoleLog.listen(this.layout.consoleSocketPath, this.layout.consoleLogPath, this.opts.consoleLogMaxBytes);
      const tuning = await this.opts.tuning(this.config);
      this.accel = tuning.accel;
      this.args = qemuArgs(this.config, this.layout, tuning);
      log.debug({ vm: this.id, args: this.args }, "spawning QEMU");
      // nsenter joins the netns and execs QEMU: same pid, so signals and the group kill still reach it.
      const netns = this.config.netnsPath;
      this.proc = netns === undefined
        ? await VmmProcess.spawn(this.opts.binary, this.args)
        : await VmmProcess.spawn("nsenter", [`--net=${netns}`, "--", this.opts.binary, ...this.args]);
      this.proc.exited.then(
        (exit) => this.onExit(exit),
        () => undefined,
      ).catch((err: unknown) => log.error({ vm: this.id, err }, "cleaning up after QEMU exit failed"));
      this.qmp = await this.connectQmp(this.opts.startTimeoutMs ?? 10_000);
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
    // Mid-start: let start finish (or fail and clean up) first, so no half-spawned QEMU escapes.
    if (state === "starting") return (this.starting ?? Promise.resolve()).catch(() => undefined).then(() => this.stop(opts));
    this.lifecycle.move("stopping", "stop");
    return this.shutdown(opts.timeoutMs ?? defaultStopTimeoutMs);
  }

  wait(): Promise<VmExit> {
    return this.endedPromise;
  }

  /**
   * Graceful first: QMP `quit` makes QEMU exit cleanly (the guest is not asked: ACPI power-down is
   * ignored by a guest without an ACPI daemon, measured in docs/hypervisor.md; orderly guest
   * shutdown is the agent's job, before stop). Then SIGTERM, then SIGKILL; always reaped.
   */
  private async shutdown(timeoutMs: number): Promise<VmExit> {
    const proc = this.proc;
    if (proc === undefined) return this.teardown("kill");
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(0, deadline - Date.now());
    this.stopRequested = "quit";
    await this.qmp?.execute("quit", undefined, { timeoutMs: Math.min(left(), 2000) }).catch(() => undefined);
    if ((await proc.waitFor(Math.max(left() - 500, 0))) === undefined) {
      proc.signal("SIGTERM");
      if ((await proc.waitFor(Math.min(left(), 500))) === undefined) {
        this.stopRequested = "kill";
        log.warn({ vm: this.id, pid: proc.pid }, "QEMU did not exit in time; killing it");
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
    const events = this.qmp?.events ?? [];
    const exit: VmExit = {
      reason: classifyExit(pexit, events, this.stopRequested),
      exitCode: pexit.code,
      signal: pexit.signal,
    };
    const shutdown = events.find((e) => e.event === "SHUTDOWN");
    if (typeof shutdown?.data?.reason === "string") exit.vmmReason = shutdown.data.reason;
    // A detached VM's end is its new owner's to report.
    if ((exit.reason === "crashed" || exit.reason === "guest-panic") && !this.detached) {
      log.warn({ vm: this.id, exit, stderr: this.proc?.stderr() }, "VM ended unexpectedly");
    }
    await this.console?.close(); // QEMU is gone: its last console bytes reach the file first
    this.lastConsoleTail = await readTail(this.layout.consoleLogPath, 4096);
    exit.consoleTail = this.lastConsoleTail;
    await this.release();
    if (this.lifecycle.state !== "stopped") this.lifecycle.move("stopped", "exit");
    this.resolveEnded(exit);
    return exit;
  }

  /**
   * Hand the running VM to another process (the VM pool gives it to a pod's shim, which reaches it by
   * its sockets and pid): QMP is closed, QEMU is no longer killed when this process exits, and the
   * state dir stays. The VM keeps running; this object only notes its end.
   */
  detach(): void {
    if (this.lifecycle.state !== "running" || this.proc === undefined) throw this.lifecycle.refusal("detach");
    this.ownsStateDir = false;
    this.detached = true;
    this.proc.forget();
    this.qmp?.close();
    this.qmp = undefined;
  }

  /** Each vCPU's instruction pointer and halt state (HMP `info registers`), for stuck-boot reports. */
  async describeVcpus(): Promise<string> {
    if (this.qmp === undefined) return "";
    const text = await this.qmp.execute("human-monitor-command", { "command-line": "info registers -a" }, { timeoutMs: 2000 });
    const cpus = [...text.matchAll(/RIP=([0-9a-f]+)\b.*?\bHLT=(\d)/g)].map(
      (m, i) => `vCPU ${i} at RIP ${m[1] ?? "?"}${m[2] === "1" ? " (halted)" : ""}`,
    );
    return cpus.length > 0 ? cpus.join(", ") : "";
  }

  /** The console's last bytes, kept after the state dir is gone. */
  lastConsoleTail = "";

  /** QEMU's last stderr lines (why it refused to start). */
  vmmStderr(): string {
    return this.proc?.stderr() ?? "";
  }

  /** Bytes the guest wrote to its console so far (the log keeps at most the last 2 x its cap). */
  get consoleBytes(): number {
    return this.console?.bytesReceived ?? 0;
  }

  private async release(): Promise<void> {
    this.qmp?.close();
    await this.console?.close(0);
    if (this.ownsStateDir) await rm(this.layout.stateDir, { recursive: true, force: true });
  }

  private async makeStateDir(): Promise<void> {
    const existing = await readdir(this.layout.stateDir).catch(() => undefined);
    if (existing !== undefined && existing.length > 0) {
      throw new KataError(
        "ALREADY_EXISTS",
        `VM state dir ${this.layout.stateDir} already exists and is not empty (another VM, or a leftover: stop it or remove the dir)`,
      );
    }
    await mkdir(this.layout.stateDir, { recursive: true, mode: 0o700 });
    this.ownsStateDir = true;
  }

  /** QEMU creates the QMP socket early; poll for it while watching for an early exit. */
  private async connectQmp(timeoutMs: number): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.proc?.hasExited !== false) {
        throw new KataError("INTERNAL", `QEMU exited during start-up: ${this.vmmStderr() || "no message"}`);
      }
      try {
        return await QmpClient.connect(this.layout.qmpSocketPath, { timeoutMs: Math.max(deadline - Date.now(), 1) });
      } catch (err) {
        if (Date.now() >= deadline) {
          throw new KataError("DEADLINE_EXCEEDED", `QEMU did not open its QMP socket within ${timeoutMs} ms`, { cause: err });
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}

function classifyExit(pexit: ProcessExit, events: readonly { event: string; data?: Record<string, unknown> }[], requested: "quit" | "kill" | undefined): VmExit["reason"] {
  if (events.some((e) => e.event === "GUEST_PANICKED")) return "guest-panic";
  const shutdown = events.find((e) => e.event === "SHUTDOWN")?.data?.reason;
  // panic=-1 makes a panicking kernel reboot; -no-reboot turns that into an exit with this reason.
  if (shutdown === "guest-reset") return "guest-panic";
  if (shutdown === "guest-shutdown") return "poweroff";
  if (requested === "kill" && pexit.signal !== null) return "killed";
  if (requested !== undefined) return pexit.code === 0 || pexit.signal === "SIGTERM" ? "stopped" : "killed";
  return "crashed";
}
