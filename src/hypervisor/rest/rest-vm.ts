// One VM of a VMM driven over a REST API socket (Cloud Hypervisor, Firecracker). Setup in order
// (state dir, VMM process, API answering, configure + boot through the API) and teardown in the
// reverse order on every path. The driver says how to talk to its VMM; this class owns the process
// and the lifecycle, so both drivers end, clean up and report exits the same way.
import { mkdir, open, readdir, rm, type FileHandle } from "node:fs/promises";
import { KataError } from "../../util/errors.js";
import { createLogger } from "../../util/log.js";
import { AGENT_VSOCK_PORT } from "../../protocol/contract/guest.js";
import type { AgentEndpoint } from "../agent-channel/endpoint.js";
import { VmLifecycle } from "../lifecycle.js";
import { readTail } from "../console-tail.js";
import { VmmProcess, type ProcessExit } from "../vmm-process.js";
import type { StopOptions, Vm, VmConfig, VmExit, VmState } from "../types.js";
import type { ApiClient } from "./api-client.js";
import { classifyExit, describeExit, type RestVmmDriver } from "./driver.js";
import type { RestVmLayout } from "./layout.js";

const log = createLogger("hypervisor.rest");

export interface RestVmOptions {
  /** How long the VMM may take to serve its API after spawn. */
  startTimeoutMs?: number;
}

const defaultStopTimeoutMs = 5000;

export class RestVm implements Vm {
  readonly id: string;
  readonly accel = "kvm" as const;
  private readonly lifecycle: VmLifecycle;
  private proc: VmmProcess | undefined;
  private api: ApiClient | undefined;
  private console: FileHandle | undefined;
  private stopRequested: "quit" | "kill" | undefined;
  private ownsStateDir = false;
  private starting: Promise<void> | undefined;
  private resolveEnded!: (exit: VmExit) => void;
  private readonly endedPromise: Promise<VmExit>;
  /** The console's last bytes, kept after the state dir is gone. */
  lastConsoleTail = "";

  constructor(
    private readonly config: VmConfig,
    private readonly layout: RestVmLayout,
    private readonly driver: RestVmmDriver,
    private readonly opts: RestVmOptions = {},
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
    return this.layout.vsockSocketPath;
  }
  get agentEndpoint(): AgentEndpoint {
    return { transport: "hybrid-vsock", path: this.layout.vsockSocketPath, port: AGENT_VSOCK_PORT };
  }
  get apiSocketPath(): string {
    return this.layout.apiSocketPath;
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
      if (this.driver.consoleOnStdout) this.console = await open(this.layout.consoleLogPath, "a", 0o600);
      const args = this.driver.args(this.config, this.layout);
      log.debug({ vm: this.id, vmm: this.driver.name, args }, "spawning the VMM");
      const netns = this.config.netnsPath;
      const spawnOpts = { installHint: this.driver.installHint, ...(this.console === undefined ? {} : { stdoutFd: this.console.fd }) };
      this.proc = netns === undefined
        ? await VmmProcess.spawn(this.driver.binary, args, spawnOpts)
        : await VmmProcess.spawn("nsenter", [`--net=${netns}`, "--", this.driver.binary, ...args], spawnOpts);
      this.proc.exited
        .then((exit) => this.onExit(exit))
        .catch((err: unknown) => log.error({ vm: this.id, err }, "cleaning up after the VMM exit failed"));
      this.api = this.driver.api(this.layout);
      await this.waitForApi(this.opts.startTimeoutMs ?? 10_000);
      await this.whileAlive(this.driver.boot(this.api, this.config, this.layout));
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
    if (state === "starting") return (this.starting ?? Promise.resolve()).catch(() => undefined).then(() => this.stop(opts));
    this.lifecycle.move("stopping", "stop");
    return this.shutdown(opts.timeoutMs ?? defaultStopTimeoutMs);
  }

  wait(): Promise<VmExit> {
    return this.endedPromise;
  }

  /** The driver's graceful shutdown over the API, then SIGTERM, then SIGKILL; always reaped. */
  private async shutdown(timeoutMs: number): Promise<VmExit> {
    const proc = this.proc;
    if (proc === undefined || this.api === undefined) return this.teardown("kill");
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(0, deadline - Date.now());
    this.stopRequested = "quit";
    const asked = await this.driver.shutdown(this.api, Math.min(left(), 2000)).catch((err: unknown) => {
      log.debug({ vm: this.id, err }, "graceful VMM shutdown refused");
      return false;
    });
    if (!asked || (await proc.waitFor(Math.max(left() - 500, 0))) === undefined) {
      proc.signal("SIGTERM");
      if ((await proc.waitFor(Math.min(left(), 500))) === undefined) {
        this.stopRequested = "kill";
        log.warn({ vm: this.id, pid: proc.pid }, "the VMM did not exit in time; killing it");
      }
    }
    return this.teardown(this.stopRequested);
  }

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
    const exit: VmExit = { reason: classifyExit(pexit, this.stopRequested), exitCode: pexit.code, signal: pexit.signal };
    if (exit.reason === "crashed") log.warn({ vm: this.id, exit, stderr: this.proc?.stderr() }, "the VMM ended unexpectedly");
    this.lastConsoleTail = await readTail(this.layout.consoleLogPath, 4096);
    exit.consoleTail = this.lastConsoleTail;
    await this.release();
    if (this.lifecycle.state !== "stopped") this.lifecycle.move("stopped", "exit");
    this.resolveEnded(exit);
    return exit;
  }

  private async release(): Promise<void> {
    await this.console?.close().catch(() => undefined);
    this.console = undefined;
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

  /** Poll the API until it answers, failing fast (with the VMM's own words) if the VMM exits. */
  private async waitForApi(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.requireAlive("while starting");
      try {
        await this.driver.ping(this.requireApi(), Math.max(Math.min(deadline - Date.now(), 1000), 1));
        return;
      } catch (err) {
        if (Date.now() >= deadline) {
          throw new KataError("DEADLINE_EXCEEDED", `${this.driver.name} did not serve its API socket ${this.layout.apiSocketPath} within ${timeoutMs} ms`, { cause: err });
        }
        if (err instanceof KataError && err.code !== "UNAVAILABLE" && err.code !== "DEADLINE_EXCEEDED") throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Run an API exchange, failing with the VMM's exit when it dies meanwhile. */
  private async whileAlive<T>(work: Promise<T>): Promise<T> {
    const proc = this.proc;
    if (proc === undefined) return work;
    const died = proc.exited.then((exit) => {
      throw new KataError("UNAVAILABLE", `${this.driver.name} exited while booting the VM (${describeExit(exit)}): ${this.vmmStderr() || "no message"}`);
    });
    try {
      return await Promise.race([work, died]);
    } catch (err) {
      // An API error caused by the VMM dying (connection reset) reads better as the exit.
      if (proc.hasExited) return died;
      throw err;
    } finally {
      died.catch(() => undefined);
    }
  }

  private requireAlive(when: string): void {
    if (this.proc?.hasExited !== false) {
      throw new KataError("INTERNAL", `${this.driver.name} exited ${when}: ${this.vmmStderr() || "no message"}`);
    }
  }

  private requireApi(): ApiClient {
    if (this.api === undefined) throw new KataError("INTERNAL", "VMM API client missing");
    return this.api;
  }
}
