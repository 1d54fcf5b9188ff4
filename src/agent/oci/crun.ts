// crun's command line, as argument arrays. The agent runs the init process with `crun run` and
// exec'd processes with `crun exec`, both in the foreground: crun then stays the agent's child
// and exits with the container process's status (128+signal when it was killed), which is how the
// agent learns exit codes without being a child subreaper (Node cannot call prctl).
import { stat } from "node:fs/promises";
import { join } from "node:path";
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

/**
 * Removes crun's record of a container, if it has one. A foreground `crun run` deletes its own
 * record (its state dir under --root, and the container's cgroup) once the container has exited,
 * so after a normal exit there is nothing left and no `crun delete` is spawned (each guest process
 * costs ~0.1-0.3 s of the guest's CPU under TCG). A record is left when crun itself was killed (a
 * stuck start) or failed half-way: then `crun delete --force` removes it. Call only once no crun
 * for `id` is running any more.
 */
export async function crunDelete(cfg: CrunConfig, id: string): Promise<void> {
  if (!(await hasRecord(cfg, id))) return;
  await run(cfg.path, [...global(cfg), "delete", "--force", id], { timeoutMs: 30_000, allowNonZero: true });
}

/** Whether crun has a state dir for `id` under its --root (the ids the agent passes are plain names). */
export async function hasRecord(cfg: CrunConfig, id: string): Promise<boolean> {
  return stat(join(cfg.root, id)).then(
    () => true,
    (err: NodeJS.ErrnoException) => err.code !== "ENOENT",
  );
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
