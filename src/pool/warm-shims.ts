// Warm shim servers: the pool daemon keeps `[factory] warm_shims` shim servers of this build
// started and loaded (Node start-up, the bundle's modules, the pod factory, the configuration the
// daemon validated), each waiting on a control socket of its own under the pool's dir. A pod's
// `start` asks for one ({"op":"shim"}), moves it where a server it spawned would run (its cgroup,
// nice value, oom_score_adj) and hands it the pod (src/shim/warm-take.ts); the server listens on
// the pod's socket and is the pod's from then on (src/shim/warm-serve.ts). So a pod start needs no
// `serve` start-up of its own (docs/shim.md "Warm servers").
// Each warm server is the daemon's child over an IPC channel: it leaves the channel at its
// hand-over, and exits when the channel closes before one (the daemon stopped, or died: SIGKILL
// too), so an untaken warm server never outlives the pool. Spawned detached (a session of its own)
// at the pool's refill priority and in the pooled VMs' low-weight cgroup (priority.ts): its
// start-up runs on spare CPU; `start` moves it out at the hand-over. Never handed out twice: the daemon gives each to one `start`, and the
// server takes one connection only.
import { spawn, type ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { getPriority } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { shimEntryIn } from "../shim/bundle-path.js";
import { serverEnv, serverNodeFlags } from "../shim/server-env.js";
import { shimBuildKey } from "../shim/warm-protocol.js";
import { describeError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import { lowerPooledProcess } from "./priority.js";
import type { WarmShimHandle } from "./protocol.js";
import type { PreparedPodConfig } from "../shim/pod-config.js";

/** A warm server given to a `start` that has not connected this long is retired (that `start` died). */
const reservedMs = 15_000;
/** A warm server not ready this long after its spawn is killed (and counts as a failure). */
const startupDeadlineMs = 120_000;
const maxBackoffMs = 60_000;
/** How long stop() waits for untaken warm servers to exit before it kills them. */
const stopWaitMs = 5000;

/** The compiled shim dir of this build (dist/src/shim beside dist/src/pool). */
const shimDir = dirname(fileURLToPath(new URL("../shim/bundle-path.js", import.meta.url)));

interface WarmServer {
  child: ChildProcess;
  pid: number;
  socket: string;
  state: "starting" | "ready" | "reserved";
  timer?: NodeJS.Timeout;
  exited: Promise<void>;
}

export interface WarmShimsOptions {
  /** Warm servers kept ready (0: none). */
  size: number;
  /** The pool's dir: control sockets go there (warm-<n>.sock). */
  root: string;
  /** The configuration file the daemon runs with ("" for the default search): what warm servers are validated for. */
  configPath: string;
  /** The refill priority: warm servers start at it, like pooled VMs. */
  nice: number;
  log: Logger;
  /**
   * Validates the configuration for a warm server (default: src/shim/prepare-config.ts in this
   * process; the daemon passes one that runs in a short-lived child process, src/pool/prepare-child.ts,
   * so zod stays out of its heap).
   */
  prepareConfig?: (configPath: string) => Promise<PreparedPodConfig>;
}

export class WarmShims {
  private readonly servers = new Set<WarmServer>();
  private stopping = false;
  private failures = 0;
  private notBefore = 0;
  private seq = 0;
  private retry: NodeJS.Timeout | undefined;
  private buildChangedLogged = false;
  private readonly script = shimEntryIn(shimDir);
  /** This daemon's shim build: only a `start` of the same build gets a warm server. */
  readonly build: string;
  taken = 0;

  constructor(private readonly opts: WarmShimsOptions) {
    this.build = shimBuildKey(this.script);
  }

  start(): void {
    this.fill();
  }

  counts(): { ready: number; starting: number; taken: number } {
    const all = [...this.servers];
    return { ready: all.filter((s) => s.state === "ready").length, starting: all.filter((s) => s.state === "starting").length, taken: this.taken };
  }

  /** A ready warm server for a `start` of `build`, given to it alone; undefined when none. */
  take(build: string): WarmShimHandle | undefined {
    if (this.stopping || build !== this.build) return undefined;
    const w = [...this.servers].find((s) => s.state === "ready");
    if (w === undefined) return undefined;
    w.state = "reserved";
    w.timer = setTimeout(() => this.retire(w, "not handed a pod in time"), reservedMs).unref();
    this.taken++;
    this.fill();
    return { pid: w.pid, socket: w.socket };
  }

  /** Retires every warm server not handed over; kills those that do not exit. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retry);
    const left = [...this.servers];
    for (const w of left) this.retire(w, "the pool stops");
    const deadline = new Promise((r) => setTimeout(r, stopWaitMs).unref());
    await Promise.race([Promise.all(left.map((w) => w.exited)), deadline]);
    for (const w of left) {
      // A reserved one may have been handed its pod just now: the pod's, not ours to kill.
      if (w.state !== "reserved" && w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
    }
    await Promise.all(left.map((w) => rm(w.socket, { force: true })));
  }

  private fill(): void {
    if (this.stopping) return;
    const spare = [...this.servers].filter((s) => s.state !== "reserved").length;
    if (spare >= this.opts.size) return;
    const wait = this.notBefore - Date.now();
    if (wait > 0) {
      this.retry ??= setTimeout(() => {
        this.retry = undefined;
        this.fill();
      }, wait).unref();
      return;
    }
    // Upgraded in place: this daemon (old code in memory) would hand the new build's servers a
    // configuration its own schema validated. Shims spawn their servers until the pool restarts.
    let onDisk: string | undefined;
    try {
      onDisk = shimBuildKey(this.script);
    } catch {
      onDisk = undefined;
    }
    if (onDisk !== this.build) {
      if (!this.buildChangedLogged) this.opts.log.warn({ script: this.script }, "the shim build changed since the pool started: no warm shim servers until the pool restarts (kata-ts pool stop)");
      this.buildChangedLogged = true;
      return;
    }
    for (let i = spare; i < this.opts.size; i++) this.spawnOne();
  }

  private spawnOne(): void {
    const socket = join(this.opts.root, `warm-${process.pid}-${++this.seq}.sock`);
    const args = [...serverNodeFlags, this.script, "-socket", socket, ...(this.opts.configPath === "" ? [] : ["-config-path", this.opts.configPath]), "warm"];
    // Through nice(1) so that every thread of the server starts at the refill priority.
    const inc = this.opts.nice - getPriority(0);
    const [cmd, argv] = inc > 0 ? ["nice", ["-n", String(inc), process.execPath, ...args]] : [process.execPath, args];
    const child = spawn(cmd, argv, { detached: true, cwd: "/", stdio: ["ignore", "ignore", "inherit", "ipc"], env: serverEnv(process.env, 0) });
    if (child.pid === undefined) {
      child.once("error", (err) => this.opts.log.warn({ err: err.message }, "a warm shim server did not start"));
      this.failed();
      return;
    }
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const w: WarmServer = { child, pid: child.pid, socket, state: "starting", exited };
    this.servers.add(w);
    child.unref();
    child.channel?.unref();
    // Beside the pooled VMs (low CPU weight), not in the daemon's own cgroup: the daemon answers at normal priority.
    void lowerPooledProcess(w.pid, this.opts.nice).catch(() => undefined);
    const startup = setTimeout(() => {
      if (w.state !== "starting") return;
      this.opts.log.warn({ pid: w.pid }, `a warm shim server was not ready within ${startupDeadlineMs / 1000} s: killed`);
      child.kill("SIGKILL");
    }, startupDeadlineMs).unref();
    child.on("message", (m: unknown) => {
      const op = (m as { op?: unknown }).op;
      // Loaded, it asks for the configuration (a message sent before it listened would be lost).
      if (op === "config") this.sendConfig(child);
      if (op !== "ready" || w.state !== "starting") return;
      clearTimeout(startup);
      w.state = "ready";
      this.failures = 0;
    });
    // Left at its hand-over, or gone: either way no longer ours.
    child.once("disconnect", () => this.forget(w));
    child.once("exit", (code, signal) => {
      clearTimeout(startup);
      if (w.state === "starting" && !this.stopping) {
        this.opts.log.warn({ pid: w.pid, code, signal }, "a warm shim server ended before it was ready");
        this.failed();
      }
      this.forget(w);
    });
    child.on("error", () => undefined);
  }

  /** The configuration the daemon runs with, validated as `start` would for a server it spawns. */
  private sendConfig(child: ChildProcess): void {
    const prepare = this.opts.prepareConfig ?? ((path: string) => import("../shim/prepare-config.js").then(({ preparePodConfig }) => preparePodConfig(path)));
    // As `start` hands over: a configuration that does not load is left to the server (it loads the file at Create and reports why).
    void prepare(this.opts.configPath)
      .catch((err: unknown): PreparedPodConfig => {
        this.opts.log.warn({ err: describeError(err) }, "validating a warm shim server's configuration: it loads the file itself");
        return { configPath: this.opts.configPath };
      })
      .then((prepared) => {
        if (child.connected) child.send({ op: "prepared", prepared }, (err) => err && this.opts.log.warn({ err: err.message }, "sending a warm shim server its configuration"));
      })
      .catch((err: unknown) => this.opts.log.warn({ err: describeError(err) }, "preparing a warm shim server's configuration"));
  }

  private failed(): void {
    this.failures++;
    this.notBefore = Date.now() + Math.min(maxBackoffMs, 2000 * 2 ** (this.failures - 1));
  }

  private forget(w: WarmServer): void {
    if (!this.servers.delete(w)) return;
    clearTimeout(w.timer);
    if (w.child.connected) w.child.disconnect();
    void rm(w.socket, { force: true }).catch(() => undefined);
    this.fill();
  }

  /** Asks a warm server to exit unless it already has a pod (it decides: one event loop, no race). */
  private retire(w: WarmServer, why: string): void {
    if (!this.servers.has(w)) return;
    if (w.state === "reserved" && !this.stopping) this.opts.log.warn({ pid: w.pid, why }, "retiring a warm shim server");
    if (w.child.connected) w.child.send({ op: "retire" }, () => undefined);
    this.forget(w);
  }
}
