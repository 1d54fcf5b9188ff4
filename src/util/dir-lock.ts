// A cross-process lock on a directory name: mkdir is atomic, and the holder's pid inside lets a
// later process take over a lock whose holder died. For long, rare jobs (building guest assets)
// that two processes (a setup, a test fixture, an installer) may start at the same time.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KataError } from "./errors.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function tryTake(lockDir: string): Promise<boolean> {
  try {
    await mkdir(lockDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const holder = Number.parseInt(await readFile(`${lockDir}/pid`, "utf8").catch(() => ""), 10);
    // A lock without a pid file is being created right now: wait for it rather than steal it.
    if (Number.isNaN(holder) || alive(holder)) return false;
    await rm(lockDir, { recursive: true, force: true });
    return tryTake(lockDir);
  }
  await writeFile(`${lockDir}/pid`, String(process.pid));
  return true;
}

export async function withDirLock<T>(lockDir: string, what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  await mkdir(dirname(lockDir), { recursive: true });
  while (!(await tryTake(lockDir))) {
    if (Date.now() > deadline) {
      throw new KataError("DEADLINE_EXCEEDED", `${what}: another process held ${lockDir} for over ${timeoutMs / 1000} s; if none is running, remove that directory`);
    }
    await sleep(500);
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
