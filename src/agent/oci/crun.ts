// crun's command line, as argument arrays. The agent runs the init process with `crun run` and
// exec'd processes with `crun exec`, both in the foreground: crun then stays the agent's child
// and exits with the container process's status (128+signal when it was killed), which is how the
// agent learns exit codes without being a child subreaper (Node cannot call prctl).
import { run } from "../../util/exec.js";
import { KataError } from "../../util/errors.js";

export interface CrunConfig {
  /** The crun binary (or a wrapper that takes the same arguments). */
  path: string;
  /** crun's state directory (--root), private to this agent. */
  root: string;
  /** "cgroupfs" in the guest (cgroup v2); "disabled" where cgroups must not be touched. */
  cgroupManager: "cgroupfs" | "systemd" | "disabled";
}

function global(cfg: CrunConfig, logFile?: string): string[] {
  const args = [`--root=${cfg.root}`, `--cgroup-manager=${cfg.cgroupManager}`];
  if (logFile !== undefined) args.push(`--log=file:${logFile}`);
  return args;
}

export function runArgv(cfg: CrunConfig, id: string, bundle: string, pidFile: string, logFile: string): string[] {
  return [cfg.path, ...global(cfg, logFile), "run", "--bundle", bundle, "--pid-file", pidFile, id];
}

export function execArgv(cfg: CrunConfig, id: string, processFile: string, pidFile: string, logFile: string): string[] {
  return [cfg.path, ...global(cfg, logFile), "exec", "--process", processFile, "--pid-file", pidFile, id];
}

export async function crunKill(cfg: CrunConfig, id: string, signal: number, all: boolean): Promise<void> {
  await run(cfg.path, [...global(cfg), "kill", ...(all ? ["--all"] : []), id, String(signal)], { timeoutMs: 30_000 });
}

/** Removes crun's record of a container; absent records are fine (`crun run` deletes its own). */
export async function crunDelete(cfg: CrunConfig, id: string): Promise<void> {
  const res = await run(cfg.path, [...global(cfg), "delete", "--force", id], { timeoutMs: 30_000, allowNonZero: true });
  void res;
}

/** `crun pause` / `crun resume`: freezes or thaws the container's cgroup. */
export async function crunPause(cfg: CrunConfig, id: string, verb: "pause" | "resume"): Promise<void> {
  await run(cfg.path, [...global(cfg), verb, id], { timeoutMs: 30_000 });
}

export async function crunUpdate(cfg: CrunConfig, id: string, resourcesFile: string): Promise<void> {
  await run(cfg.path, [...global(cfg), "update", "--resources", resourcesFile, id], { timeoutMs: 30_000 });
}

export async function crunState(cfg: CrunConfig, id: string): Promise<{ status: string; pid: number } | undefined> {
  const res = await run(cfg.path, [...global(cfg), "state", id], { timeoutMs: 30_000, allowNonZero: true });
  if (res.stdout.trim() === "") return undefined;
  try {
    const st = JSON.parse(res.stdout) as { status: string; pid: number };
    return st;
  } catch (err) {
    throw new KataError("INTERNAL", `crun state ${id} printed something that is not JSON`, { cause: err });
  }
}
