// A private containerd 1.6 for tests: its own config, root, state and sockets in a temp dir,
// the CRI plugin on, overlayfs, and by default a netns of its own with a bridge CNI network in it
// (so pods get an eth0 without touching the host's network). stop() tears down everything it
// made (tasks, shims, mounts, sockets, CNI results, netns, dirs); findLeaks() checks.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { openSync, closeSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PAUSE_IMAGE_REF } from "../../src/images/test-images.js";
import { containerdEnv } from "../../src/util/containerd-env.js";
import { run, type ExecResult } from "../../src/util/exec.js";
import { KataError } from "../../src/util/errors.js";
import { CRI_PLUGIN, defaultRuntimes, bridgeConflist, renderHarnessConfig, type RuntimeHandlerConfig } from "./containerd-config.js";
import type { KataTsHandler } from "../../src/deploy/containerd-config.js";
import { installContainerdHandler } from "../../src/deploy/containerd-install.js";
import { unmountAllUnder } from "./mounts.js";
import { removeAllPods, waitContainerdReady } from "../../src/devenv/containerd-control.js";
import { connectCri } from "../../src/cri/client.js";
import { packagedShimPath } from "../../src/deploy/paths.js";
import { createNetns, deleteNetns } from "./netns.js";
import { killAll, processesInCgroups, processesMentioning, processesRootedUnder } from "./processes.js";
import { newCgroups, ownCniResults, snapshotHost, type HostSnapshot, type LeakScope } from "./leaks.js";
import { pathExists } from "../../src/util/fs.js";
import { ownShimSockets } from "./own-shim-sockets.js";
import { isListening } from "./shim-sockets.js";
import { sweepStaleHarnesses } from "./stale.js";

export { CRI_PLUGIN, type RuntimeHandlerConfig };
export { assertNoLeaks, findLeaks } from "./leaks.js";

/** The image the CRI plugin uses for pod sandboxes; test/harness images import it under this name. */
export const DEFAULT_SANDBOX_IMAGE = PAUSE_IMAGE_REF;
export const K8S_NAMESPACE = "k8s.io";
const CNI_NETWORKS_DIR = "/var/lib/cni/networks";

export interface StartContainerdOptions {
  /** CRI runtime handlers by name; default: runc only. */
  runtimes?: Record<string, RuntimeHandlerConfig>;
  /**
   * Path of a network namespace (e.g. /var/run/netns/x) to run containerd in, via nsenter --net
   * (not `ip netns exec`, which would also give it a mount namespace of its own). Default: the
   * harness makes a netns of its own and deletes it in stop().
   */
  netns?: string;
  /** A CNI conf dir of the caller's; default: a bridge + host-local conflist in the temp dir. */
  cniConfDir?: string;
  cniBinDir?: string;
  sandboxImage?: string;
  /** Deep-merged over the rendered config.toml. */
  extraConfig?: Record<string, unknown>;
  /**
   * Configure the `kata-ts` handler with the node installer's own code (src/deploy), as a drop-in
   * imported by the harness's config.toml, and the shim linked into <baseDir>/bin (first on
   * containerd's PATH). Default: on, runtime_path = <repo>/bin/containerd-shim-kata-ts-v2.
   * `false` leaves only the runtimes above.
   */
  kataTs?: false | Partial<KataTsHandler>;
  /**
   * A kata-ts configuration.toml (its text) for the `kata-ts` handler's ConfigPath: written to
   * <baseDir>/kata-ts-configuration.toml, removed with the rest at stop(). Ignored with kataTs false.
   */
  kataConfig?: string;
  /**
   * More shims by runtime type (e.g. io.containerd.kata-ts-hostpod.v2 -> a compiled entry script):
   * each gets a launcher `<baseDir>/bin/containerd-shim-<name>-<version>` running the script with
   * this node, the name containerd 1.6 looks up on PATH for that runtime type.
   */
  shims?: Record<string, string>;
  /** Called with the config path before containerd starts (after the kata-ts install). */
  beforeStart?: (configPath: string) => Promise<void>;
  /**
   * Leave the kata-ts VM pool as configured (on by default: the first shim starts a pool daemon).
   * Default false: KATA_TS_POOL=off in containerd's environment turns it off for every shim.
   */
  pool?: boolean;
  /** Extra environment for containerd (and so for its shims). */
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export interface PrivateContainerd extends LeakScope {
  address: string;
  ttrpcAddress: string;
  /** The harness's temp dir: everything below it is this instance's. */
  baseDir: string;
  rootDir: string;
  stateDir: string;
  configPath: string;
  logPath: string;
  /** KATA_TS_STATE_DIR given to containerd and so to kata-ts shims. */
  kataStateDir: string;
  cniNetworkName: string;
  /** The netns containerd (and so every pod's CNI setup) runs in. */
  netnsPath: string;
  pid: number;
  /** `ctr --address <address> -n k8s.io <args>`. */
  ctr(args: readonly string[], opts?: { timeoutMs?: number; namespace?: string }): Promise<ExecResult>;
  stop(): Promise<void>;
  /** Stops containerd (SIGTERM, as a service restart does) and starts it again on the same state: its shims run on. */
  restart(): Promise<void>;
}

/** Wait for `p` at most `ms`; the timer is cleared so it never holds the event loop open. */
async function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export async function startContainerd(opts: StartContainerdOptions = {}): Promise<PrivateContainerd> {
  await sweepStaleHarnesses();
  const before = await snapshotHost();
  // Short base path: unix socket paths must stay under 108 bytes.
  const baseDir = await mkdtemp(join(tmpdir(), "ktsh-"));
  const cniNetworkName = `ktsh-${randomBytes(4).toString("hex")}`;
  const address = join(baseDir, "containerd.sock");
  const logPath = join(baseDir, "containerd.log");
  const ctr = (ctrArgs: readonly string[], o: { timeoutMs?: number; namespace?: string } = {}) =>
    run("ctr", ["--address", address, "--namespace", o.namespace ?? K8S_NAMESPACE, ...ctrArgs], { timeoutMs: o.timeoutMs ?? 60_000 });
  // Our own netns unless the caller brings one; named like the CNI network, for the leak report.
  const ownNetns = opts.netns === undefined ? cniNetworkName : undefined;
  let proc: Proc | undefined;
  const seenContainerIds: string[] = [];
  const leftShimSockets: string[] = [];

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Pods first through CRI, as kubelet would (CNI teardown, netns removal), then whatever is left
    // through ctr (a broken shim, containers CRI does not know).
    if (proc && !proc.exited) await removeAllPods(address);
    const ids = proc && !proc.exited ? await knownContainerIds(ctr) : [];
    if (proc && !proc.exited) await teardownTasks(ctr, ids);
    await proc?.terminate();
    // Shim sockets this instance made that nothing serves any more, before the harness kills
    // anything: a shim died (or was killed) and neither it nor containerd's `delete` removed its
    // socket. A leak; the ones of shims killed below are the harness's own doing, removed silently.
    const stateDir = join(baseDir, "state");
    const dead = async (s: string) => (await pathExists(s)) && !(await isListening(s));
    const suspects: string[] = [];
    for (const s of await ownShimSockets(address, logPath, stateDir)) if (await dead(s)) suspects.push(s);
    // A shim still on its way out gets a moment to remove its socket before it counts as left.
    if (suspects.length > 0) await new Promise((r) => setTimeout(r, 1000));
    for (const s of suspects) if (await dead(s)) leftShimSockets.push(s);
    // Whatever is still alive (a shim that lost containerd, its containers, QEMU) is ours to kill.
    seenContainerIds.push(...ids);
    await killAll([...(await processesMentioning(baseDir)), ...(await processesRootedUnder(baseDir)), ...(await processesInCgroups(ids))]);
    await unmountAllUnder([baseDir]);
    await rmNewCgroups(before);
    // Only this instance's: other containerds share /run/containerd/s (their dead sockets are
    // their own harness's to report).
    for (const s of await ownShimSockets(address, logPath, stateDir)) if (!(await isListening(s))) await rm(s, { force: true });
    await removeCniState(cniNetworkName, baseDir);
    if (ownNetns) await deleteNetns(ownNetns);
    await rm(baseDir, { recursive: true, force: true, maxRetries: 3 });
  };

  try {
    const netnsPath = opts.netns ?? (await createNetns(cniNetworkName));
    const dirs = await prepareDirs(baseDir, cniNetworkName, opts);
    const configPath = join(baseDir, "config.toml");
    await writeFile(
      configPath,
      renderHarnessConfig({
        ...dirs,
        address,
        ttrpcAddress: `${address}.ttrpc`,
        cniBinDir: opts.cniBinDir ?? "/usr/lib/cni",
        sandboxImage: opts.sandboxImage ?? DEFAULT_SANDBOX_IMAGE,
        runtimes: opts.runtimes ?? defaultRuntimes,
        extraConfig: opts.extraConfig,
      }),
    );
    // containerd 1.6 finds shims by name on PATH (not by runtime_path): the installer links the
    // shim into a bin dir of ours, which goes first on containerd's PATH.
    const binDir = join(baseDir, "bin");
    if (opts.kataTs !== false) {
      let kataConfigPath: string | undefined;
      if (opts.kataConfig !== undefined) {
        kataConfigPath = join(baseDir, "kata-ts-configuration.toml");
        await writeFile(kataConfigPath, opts.kataConfig);
      }
      await installContainerdHandler({
        containerdConfigPath: configPath,
        dropInPath: join(baseDir, "kata-ts-runtime.toml"),
        runtimePath: packagedShimPath(),
        shimLinkDir: binDir,
        ...(kataConfigPath === undefined ? {} : { kataConfigPath }),
        ...opts.kataTs,
      });
    }
    for (const [runtimeType, script] of Object.entries(opts.shims ?? {})) await writeShimLauncher(binDir, runtimeType, script);
    if (opts.beforeStart) await opts.beforeStart(configPath);
    const argv = ["nsenter", `--net=${netnsPath}`, "--", "containerd", "--config", configPath, "--log-level", "debug"];
    const env = {
      ...containerdEnv(process.env),
      ...opts.env,
      PATH: `${binDir}:${opts.env?.PATH ?? process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
      KATA_TS_STATE_DIR: dirs.kataStateDir,
      // With the node-level shim server, its keeper exits this soon after the last pod goes (60 s
      // by default), so that a test's leftover checks see it gone.
      KATA_TS_NODE_SHIM_IDLE_S: opts.env?.KATA_TS_NODE_SHIM_IDLE_S ?? process.env.KATA_TS_NODE_SHIM_IDLE_S ?? "1",
      // The VM pool is on by default; only the pool's own tests (and benches) run with it.
      ...(opts.pool === true ? {} : { KATA_TS_POOL: "off" }),
    };
    const launch = async (): Promise<void> => {
      const started = spawnContainerd(argv, logPath, env);
      proc = started;
      await waitContainerdReady(address, () => started.exited, logPath, opts.readyTimeoutMs ?? 30_000);
    };
    await launch();
    return {
      address,
      ttrpcAddress: `${address}.ttrpc`,
      baseDir,
      rootDir: dirs.rootDir,
      stateDir: dirs.stateDir,
      configPath,
      logPath,
      kataStateDir: dirs.kataStateDir,
      cniNetworkName,
      netnsPath,
      before,
      seenContainerIds,
      leftShimSockets,
      get pid() {
        return proc?.pid ?? -1;
      },
      ctr,
      stop,
      async restart() {
        await proc?.terminate();
        await launch();
        // Up is not ready: the CRI plugin answers "not initialized" until it has found its pods again.
        await waitCriRecovered(address, 60_000);
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function prepareDirs(baseDir: string, cniNetworkName: string, opts: StartContainerdOptions) {
  const d = {
    rootDir: join(baseDir, "root"),
    stateDir: join(baseDir, "state"),
    kataStateDir: join(baseDir, "kata-ts"),
    optDir: join(baseDir, "opt"),
    cniConfDir: opts.cniConfDir ?? join(baseDir, "cni"),
  };
  for (const dir of [d.rootDir, d.stateDir, d.kataStateDir, d.optDir, join(baseDir, "bin")]) await mkdir(dir, { recursive: true });
  if (opts.cniConfDir === undefined) {
    await mkdir(d.cniConfDir, { recursive: true });
    // Every harness lives in its own netns, so the same bridge name and subnet can be reused.
    await writeFile(join(d.cniConfDir, "10-ktsh.conflist"), bridgeConflist(cniNetworkName, "ktsh0", "10.244.77.0/24"));
  }
  return d;
}

/** containerd's binary name for a runtime type ($prefix.name.version -> containerd-shim-name-version). */
function shimBinaryName(runtimeType: string): string {
  const parts = runtimeType.split(".");
  if (parts.length < 2) throw new KataError("INVALID_ARGUMENT", `runtime type ${runtimeType} is not <prefix>.<name>.<version>`);
  return `containerd-shim-${parts.at(-2) as string}-${parts.at(-1) as string}`;
}

async function writeShimLauncher(binDir: string, runtimeType: string, script: string): Promise<void> {
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  // A launcher script of its own (e.g. the repo's sh launcher) runs as it is; a JS entry with this node.
  const own = (await readFile(script, "utf8").catch(() => "")).startsWith("#!/bin/sh");
  const text = own ? `#!/bin/sh\nexec ${quote(script)} "$@"\n` : `#!/bin/sh\nexec ${quote(process.execPath)} ${quote(script)} "$@"\n`;
  await writeFile(join(binDir, shimBinaryName(runtimeType)), text, { mode: 0o755 });
}

interface Proc {
  pid: number;
  readonly exited: boolean;
  terminate(): Promise<void>;
}

/** Polls CRI until it answers (it refuses every call until its recovery after a restart is done). */
async function waitCriRecovered(address: string, timeoutMs: number): Promise<void> {
  const cri = connectCri(address);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const err = await cri.runtime.listPodSandbox({}, { timeoutMs: 5_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (err === undefined) return;
      if (Date.now() > deadline) throw new KataError("DEADLINE_EXCEEDED", `CRI did not answer within ${timeoutMs} ms of containerd's restart: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    cri.close();
  }
}

function spawnContainerd(argv: string[], logPath: string, env: NodeJS.ProcessEnv): Proc {
  const logFd = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    child = spawn(argv[0] as string, argv.slice(1), { stdio: ["ignore", logFd, logFd], env });
  } finally {
    closeSync(logFd);
  }
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    const done = () => {
      exited = true;
      resolve();
    };
    child.once("exit", done);
    child.once("error", done);
  });
  return {
    pid: child.pid ?? -1,
    get exited() {
      return exited;
    },
    async terminate() {
      if (exited) return;
      child.kill("SIGTERM");
      await within(exitPromise, 10_000);
      if (!exited) child.kill("SIGKILL");
      await within(exitPromise, 10_000);
    },
  };
}

type Ctr = PrivateContainerd["ctr"];

async function knownContainerIds(ctr: Ctr): Promise<string[]> {
  try {
    const { stdout } = await ctr(["containers", "ls", "-q"], { timeoutMs: 15_000 });
    return stdout.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
  } catch {
    return [];
  }
}

/** Kill and delete every task and container (what CRI would do on RemovePodSandbox). */
async function teardownTasks(ctr: Ctr, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    await ctr(["tasks", "kill", "--all", "--signal", "SIGKILL", id], { timeoutMs: 15_000 }).catch(() => undefined);
  }
  for (const id of ids) {
    await ctr(["tasks", "delete", "--force", id], { timeoutMs: 30_000 }).catch(() => undefined);
    await ctr(["containers", "delete", id], { timeoutMs: 15_000 }).catch(() => undefined);
  }
}

/** Remove container cgroups made since the snapshot (empty once their processes are dead). */
async function rmNewCgroups(before: HostSnapshot): Promise<void> {
  // Deepest first: a pod's cgroup may hold its containers' cgroups.
  for (const dir of (await newCgroups(before)).sort((x, y) => y.length - x.length)) {
    await rmdir(dir).catch(() => undefined);
  }
}

async function removeCniState(networkName: string, baseDir: string): Promise<void> {
  for (const f of await ownCniResults(networkName, baseDir)) await rm(f, { force: true });
  await rm(join(CNI_NETWORKS_DIR, networkName), { recursive: true, force: true });
}

/** containerd 1.6's shim socket path for a task: /run/containerd/s/sha256(address/ns/id). */
export function shimSocketPath(address: string, id: string, namespace = K8S_NAMESPACE): string {
  return join("/run/containerd/s", createHash("sha256").update(join(address, namespace, id)).digest("hex"));
}
