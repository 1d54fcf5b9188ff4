// `kata-ts pool serve`: the node's VM pool daemon. It outlives pods and containerd restarts (it is
// no child of either), answers shims on a unix socket under the state root, and keeps pool_size
// pod-neutral VMs ready per shape (src/pool/refill.ts). The default shape (configuration.toml's
// default size, no tenant) is pooled at start; other shapes once a pod asks for one. Stopping
// (SIGTERM, SIGINT, or {"op":"stop"}) destroys the pooled VMs and removes the pool's files;
// VMs already handed to shims keep running. A SIGKILLed daemon is cleaned up by its watchdog.
import { chmod, mkdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { selectedVmmConfig } from "../config/defaults.js";
import type { KataConfig } from "../config/schema.js";
import type { GuestAssets } from "../guest/assets.js";
import type { PreparedPodConfig } from "../shim/pod-config.js";
import { describeError, KataError } from "../util/errors.js";
import { answerJsonLine, readJsonLine } from "../util/json-line-socket.js";
import type { Logger } from "../util/log.js";
import { poolPaths, type PoolPaths } from "./layout.js";
import { poolCall, type PoolRequest, type PoolResponse, type PoolStatus } from "./protocol.js";
import { Pools } from "./refill.js";
import { parseShape, podAssets, poolShape, rehearsesPodPath, requirePoolVmm } from "./shape.js";
import { joinPoolCgroup } from "./priority.js";
import { startWatchdog, type Watchdog } from "./watchdog.js";
import { WarmShims } from "./warm-shims.js";

/** The least a pooled VM's boot is given (a pod's boot gets agent.dial_timeout). */
const pooledBootTimeoutMs = 600_000;
/** A client sends its request as it connects; a shape is well under 1 KiB. */
const maxRequestBytes = 64 * 1024;
const requestReadMs = 10_000;

export interface PoolServerOptions {
  config: KataConfig;
  /** The configuration file the daemon was started with (--config; "" or absent: the default search), for warm shim servers. */
  configPath?: string;
  log: Logger;
  paths?: PoolPaths;
  /** The default shape's guest assets, when the caller read them already (default: read here, podAssets). */
  assets?: GuestAssets;
  /** How a warm shim server's configuration is validated (default: in this process, as `start` does). */
  prepareConfig?: (configPath: string) => Promise<PreparedPodConfig>;
}

export class PoolServer {
  private stopping: Promise<void> | undefined;
  private readonly stoppedPromise: Promise<void>;
  private resolveStopped!: () => void;

  private constructor(
    private readonly opts: PoolServerOptions,
    private readonly paths: PoolPaths,
    private readonly pools: Pools,
    private readonly server: Server,
    private readonly watchdog: Watchdog,
    private readonly warmShims: WarmShims,
  ) {
    this.stoppedPromise = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  static async start(opts: PoolServerOptions): Promise<PoolServer> {
    const paths = opts.paths ?? poolPaths();
    const { config, log } = opts;
    requirePoolVmm(config); // before anything is created
    await mkdir(paths.vmsDir, { recursive: true, mode: 0o700 });
    const running = await poolCall(paths.socket, { op: "status" }, 2000).catch(() => undefined);
    if (running?.ok === true) {
      throw new KataError("ALREADY_EXISTS", `a VM pool already serves ${paths.socket} (pid ${running.status?.pid ?? "?"}); stop it first: kata-ts pool stop`);
    }
    await takePidFile(paths);
    await rm(paths.socket, { force: true });
    // Its own cgroup, whoever started it (a shim runs in its pod's cgroup): outlives pods and
    // containerd. At normal priority: a pod start waits on its answer to a take. Its VMs (QEMU,
    // virtiofsd) go low as they start (priority.ts, pooled-vm.ts): they boot on spare CPU only.
    await joinPoolCgroup(process.pid).catch((err: unknown) => log.warn({ err: describeError(err) }, "the VM pool stays in the cgroup it was started in"));
    const watchdog = startWatchdog(paths.root, process.pid);
    const f = config.factory;
    const pools = new Pools({
      vmsDir: paths.vmsDir,
      poolSize: f.pool_size,
      maxShapes: f.max_shapes,
      refillDelayMs: f.refill_delay * 1000,
      handoverTimeoutMs: f.handover_timeout * 1000,
      // No pod waits on a pooled boot, and at the pool's low CPU weight a busy host slows it down
      // many times: a long deadline, and no console-silence stall check (the VM is starved, not stuck).
      boot: { bootTimeoutMs: Math.max(config.agent.dial_timeout * 1000, pooledBootTimeoutMs), warmUpContainers: f.warm_up_containers, rehearsePodPath: rehearsesPodPath(config), nice: f.refill_nice, log },
      log,
    });
    // Pods served by the node-level server need no shim process of their own, warm or not.
    const warmShimCount = config.runtime.shim_server === "node" ? 0 : f.warm_shims;
    const warmShims = new WarmShims({ size: warmShimCount, root: paths.root, configPath: opts.configPath ?? "", nice: f.refill_nice, log, ...(opts.prepareConfig === undefined ? {} : { prepareConfig: opts.prepareConfig }) });
    const server = createServer();
    const self = new PoolServer(opts, paths, pools, server, watchdog, warmShims);
    server.on("connection", (sock) => self.serveConnection(sock));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(paths.socket, () => resolve());
    });
    await chmod(paths.socket, 0o600);
    const vmm = selectedVmmConfig(config);
    const assets = opts.assets ?? (await podAssets(config));
    // A pod without CPU or memory limits gets the baseline size (src/shim/pod-sizing.ts).
    const { default_vcpus: vcpus, default_memory: memoryMiB } = vmm;
    pools.addShape(poolShape(config, assets, { vcpus, memoryMiB }, ""));
    pools.start();
    warmShims.start();
    log.info({ socket: paths.socket, poolSize: f.pool_size, maxShapes: f.max_shapes, warmShims: warmShimCount }, "VM pool serving");
    return self;
  }

  /** Resolves once stop() has finished. */
  stopped(): Promise<void> {
    return this.stoppedPromise;
  }

  stop(): Promise<void> {
    this.stopping ??= this.tearDown();
    return this.stopping;
  }

  private async tearDown(): Promise<void> {
    this.server.close();
    await Promise.all([this.pools.stop(), this.warmShims.stop()]);
    await rm(this.paths.socket, { force: true });
    await rm(this.paths.pidFile, { force: true });
    await rmdir(this.paths.vmsDir).catch(() => undefined); // adopted VMs' dirs moved out already
    await rmdir(this.paths.root).catch(() => undefined);
    this.watchdog.release();
    await this.watchdog.exited;
    this.opts.log.info("VM pool stopped");
    this.resolveStopped();
  }

  async status(): Promise<PoolStatus> {
    return { pid: process.pid, poolSize: this.opts.config.factory.pool_size, shapes: await this.pools.status(), ...this.pools.counters, warmShims: this.warmShims.counts() };
  }

  private serveConnection(sock: Socket): void {
    void readJsonLine(sock, { what: "a pool request", maxBytes: maxRequestBytes, timeoutMs: requestReadMs })
      .then((req) => this.answer(req))
      .catch((err: unknown): PoolResponse => ({ ok: false, error: describeError(err) }))
      .then((res) => answerJsonLine(sock, res));
  }

  private async answer(msg: unknown): Promise<PoolResponse> {
    if (typeof msg !== "object" || msg === null) throw new KataError("INVALID_ARGUMENT", `a pool request is a JSON object with an "op", not ${JSON.stringify(msg)}`);
    const req = msg as PoolRequest;
    switch (req.op) {
      case "take": {
        if (this.stopping !== undefined) return { ok: true };
        const vm = this.pools.take(parseShape(req.shape));
        if (vm !== undefined) this.opts.log.info({ vm: vm.vmId }, "pooled VM handed to a shim");
        return vm === undefined ? { ok: true } : { ok: true, vm };
      }
      case "shim": {
        if (this.stopping !== undefined) return { ok: true };
        const shim = this.warmShims.take(String(req.build));
        if (shim !== undefined) this.opts.log.info({ pid: shim.pid }, "warm shim server handed to a pod's start");
        return shim === undefined ? { ok: true } : { ok: true, shim };
      }
      case "status":
        return { ok: true, status: await this.status() };
      case "stop":
        setImmediate(() => void this.stop());
        return { ok: true };
      default:
        throw new KataError("INVALID_ARGUMENT", `unknown pool request ${JSON.stringify((req as { op?: unknown }).op)}`);
    }
  }
}

/**
 * One daemon per pool root: the pid file is created exclusively; one left by a daemon that is gone
 * (or whose pid now runs something else) is taken over.
 */
async function takePidFile(paths: PoolPaths): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(paths.pidFile, `${process.pid}\n`, { flag: "wx" });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = await poolPid(paths);
    const cmd = holder === undefined ? "" : await readFile(`/proc/${holder}/cmdline`, "utf8").catch(() => "");
    if (holder !== undefined && holder !== process.pid && cmd.includes("pool\0serve")) {
      throw new KataError("ALREADY_EXISTS", `a VM pool daemon (pid ${holder}) already owns ${paths.root}; stop it first: kata-ts pool stop`);
    }
    await rm(paths.pidFile, { force: true });
  }
  throw new KataError("ALREADY_EXISTS", `another VM pool daemon is starting in ${paths.root}`);
}

/** The pid a pool wrote, if any (for `kata-ts pool stop` when the socket does not answer). */
export async function poolPid(paths: PoolPaths = poolPaths()): Promise<number | undefined> {
  const text = await readFile(paths.pidFile, "utf8").catch(() => "");
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
