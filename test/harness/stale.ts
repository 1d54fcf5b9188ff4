// Debris of harness runs that died without stop() (a killed test process): their netns, temp
// dirs and the shim sockets their containerd's log and bundles name. Swept at the next start, conservatively: only ktsh-* entries older than a few minutes
// that no process uses any more, so a concurrently starting or running harness is never touched.
import { readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../src/util/exec.js";
import { unmountAllUnder } from "./mounts.js";
import { NETNS_DIR, deleteNetns } from "./netns.js";
import { ownShimSockets } from "./own-shim-sockets.js";
import { killAll, processesMentioning } from "./processes.js";
import { isListening } from "./shim-sockets.js";

const PREFIX = "ktsh-";
const MIN_AGE_MS = 5 * 60_000;

async function oldEnough(path: string): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > MIN_AGE_MS;
  } catch {
    return false;
  }
}

async function entries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => n.startsWith(PREFIX));
  } catch {
    return [];
  }
}

export async function sweepStaleHarnesses(): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await entries(NETNS_DIR)) {
    const path = join(NETNS_DIR, name);
    if (!(await oldEnough(path))) continue;
    const { stdout } = await run("ip", ["netns", "pids", name], { timeoutMs: 10_000, allowNonZero: true });
    if (stdout.trim() !== "") continue; // something still runs in it
    await deleteNetns(name);
    swept.push(path);
  }
  for (const name of await entries(tmpdir())) {
    const dir = join(tmpdir(), name);
    if (!(await oldEnough(dir))) continue;
    // A containerd still serving from this dir is a live harness: leave it. Orphaned shims and
    // their children (their containerd is gone) are debris.
    const procs = await processesMentioning(dir);
    if (procs.some((p) => p.cmdline[0]?.endsWith("containerd") === true)) continue;
    await killAll(procs);
    // Its shims' sockets in /run/containerd/s: a killed shim leaves its socket file behind.
    for (const s of await ownShimSockets(join(dir, "containerd.sock"), join(dir, "containerd.log"), join(dir, "state"))) {
      if (!(await isListening(s))) await rm(s, { force: true });
    }
    await unmountAllUnder([dir]);
    await rm(dir, { recursive: true, force: true });
    swept.push(dir);
  }
  return swept;
}
