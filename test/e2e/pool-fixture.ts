// The VM pool daemon for e2e tests: `kata-ts pool serve` with the harness's state dir (so shims
// started by the harness's containerd find it), and what the tests look at: which QEMUs are still
// pooled, which VM a pod runs in, the pool's netns names.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { open, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { poolPaths, type PoolPaths } from "../../src/pool/layout.js";
import { poolCall, type PoolStatus } from "../../src/pool/protocol.js";
import { KataError } from "../../src/util/errors.js";
import type { PrivateContainerd } from "../harness/containerd.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");

export interface PoolDaemon {
  pid: number;
  paths: PoolPaths;
  /** Resolves when the daemon's process is gone. */
  exited: Promise<void>;
  /** Still running. */
  running(): boolean;
}

/** The daemon a shim started (not our child): found by its pid file, watched in /proc. */
export async function foundPoolDaemon(paths: PoolPaths, timeoutMs = 60_000): Promise<PoolDaemon> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = Number((await readFile(paths.pidFile, "utf8").catch(() => "")).trim());
    if (pid > 0 && (await poolStatus(paths).catch(() => undefined)) !== undefined) {
      const alive = (): boolean => existsSync(`/proc/${pid}/cmdline`) && !readFileSyncSafe(`/proc/${pid}/stat`).includes(") Z ");
      const exited = (async () => {
        while (alive()) await new Promise((r) => setTimeout(r, 100));
      })();
      return { pid, paths, exited, running: alive };
    }
    if (Date.now() > deadline) throw new KataError("DEADLINE_EXCEEDED", `no VM pool daemon answered at ${paths.socket} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

export function poolPathsOf(ctd: PrivateContainerd): PoolPaths {
  return poolPaths(join(ctd.kataStateDir, "kata-ts-pool"));
}

export async function startPoolDaemon(ctd: PrivateContainerd, configPath: string): Promise<PoolDaemon> {
  const log = await open(join(ctd.baseDir, "pool.log"), "a");
  const child = spawn(process.execPath, [join(repoRoot, "bin", "kata-ts.js"), "pool", "serve", "--config", configPath], {
    env: { ...process.env, KATA_TS_STATE_DIR: ctd.kataStateDir },
    stdio: ["ignore", log.fd, log.fd],
    detached: true,
  });
  await log.close();
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { pid: child.pid ?? 0, paths: poolPathsOf(ctd), exited, running: () => child.exitCode === null && child.signalCode === null };
}

export async function poolStatus(paths: PoolPaths): Promise<PoolStatus> {
  const res = await poolCall(paths.socket, { op: "status" });
  if (!res.ok || res.status === undefined) throw new KataError("INTERNAL", `pool status: ${JSON.stringify(res)}`);
  return res.status;
}

/** QEMUs whose VM dir is still in the pool (not adopted), as vm id -> pid. */
export async function pooledQemus(paths: PoolPaths): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const pattern = new RegExp(`${paths.vmsDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/(p[0-9a-f]{12})/`);
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (!(argv[0] ?? "").includes("qemu-system")) continue;
    const id = pattern.exec(argv.join(" "))?.[1];
    if (id !== undefined && existsSync(join(paths.vmsDir, id))) out.set(id, Number(name));
  }
  return out;
}

/** Wait until `want` VMs are pooled and answering (booted ready), none of them in `exclude`. */
export async function waitPooled(paths: PoolPaths, want: number, exclude: ReadonlySet<number> = new Set(), timeoutMs = 540_000): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await poolStatus(paths).catch(() => undefined);
    const ready = status?.shapes.reduce((n, s) => n + s.ready, 0) ?? 0;
    const vms = await pooledQemus(paths);
    const fresh = [...vms.values()].filter((pid) => !exclude.has(pid));
    if (ready >= want && fresh.length >= want) return vms;
    if (Date.now() > deadline) throw new KataError("DEADLINE_EXCEEDED", `the pool did not get ${want} ready VM(s) within ${timeoutMs} ms (status ${JSON.stringify(status)})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The sandbox record the pod's shim keeps (src/sandbox/state-file.ts). */
export async function sandboxRecord(ctd: PrivateContainerd, podSandboxId: string): Promise<{ vmPid?: number; virtiofsdPid?: number }> {
  return JSON.parse(await readFile(join(ctd.kataStateDir, podSandboxId, "state.json"), "utf8")) as { vmPid?: number; virtiofsdPid?: number };
}

/** Processes whose command line names a dir under the pool's vms/. */
export async function processesNamingPool(paths: PoolPaths): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(`${paths.vmsDir}/`)) out.push(Number(name));
  }
  return out;
}

/** The nice value of a process's main thread, or of one of its threads. */
export async function niceOf(pid: number, tid?: string): Promise<number> {
  const stat = await readFile(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[16]); // field 19 of /proc/<pid>/stat
}

/** The session id (field 6 of /proc/<pid>/stat). */
export async function sessionOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

/**
 * The pid of the shim server of a pod: a `serve` (spawned by its `start`) or a `warm` server (the
 * pool's, handed the pod) whose cwd is the pod's bundle.
 */
export async function shimPidOf(ctd: PrivateContainerd, podSandboxId: string): Promise<number> {
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (!["serve", "warm"].includes(argv.at(-2) ?? "")) continue;
    const cwd = await readlink(`/proc/${name}/cwd`).catch(() => "");
    if (cwd.startsWith(ctd.baseDir) && cwd.endsWith(`/${podSandboxId}`)) return Number(name);
  }
  throw new KataError("NOT_FOUND", `no shim server for pod ${podSandboxId}`);
}

/** The action a shim server was started as: "serve" (by its pod's `start`) or "warm" (by the pool). */
export async function shimActionOf(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").at(-2) ?? "";
}

/** Warm shim servers this pool started (handed over to pods or not). */
export async function warmShimServers(paths: PoolPaths): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0");
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => ") Z");
    if (argv.at(-2) === "warm" && argv.some((a) => a.startsWith(`${paths.root}/warm-`)) && !stat.includes(") Z ")) out.push(Number(name));
  }
  return out;
}

/** A warm shim server ready in the pool (not one of `exclude`), by pid. */
export async function readyWarmShim(paths: PoolPaths, exclude: ReadonlySet<number> = new Set(), timeoutMs = 300_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await poolStatus(paths).catch(() => undefined);
    if ((status?.warmShims?.ready ?? 0) > 0) {
      const pid = (await warmShimServers(paths)).find((p) => !exclude.has(p));
      if (pid !== undefined) return pid;
    }
    if (Date.now() > deadline) throw new KataError("DEADLINE_EXCEEDED", `no warm shim server ready within ${timeoutMs} ms (status ${JSON.stringify(status)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const kids = await readFile(`/proc/${pid}/task/${tid}/children`, "utf8").catch(() => "");
    out.push(...kids.split(" ").filter((k) => k.trim() !== "").map(Number));
  }
  return out;
}
