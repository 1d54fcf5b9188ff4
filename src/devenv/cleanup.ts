// Last-resort cleanup for a throwaway containerd: processes that carry its temp dir in their
// command line or environment (containerd passes its environment to shims, and QEMU/virtiofsd
// take paths under it), and mounts below it.
import { readdir, readFile } from "node:fs/promises";
import { tryRun } from "../util/exec.js";

async function nulList(path: string): Promise<string[]> {
  return (await readFile(path, "utf8").catch(() => "")).split("\0").filter((s) => s !== "");
}

export async function processesMentioning(marker: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmd = await nulList(`/proc/${name}/cmdline`);
    if (cmd.length === 0) continue; // zombie or kernel thread
    const env = await nulList(`/proc/${name}/environ`);
    if ([...cmd, ...env].some((s) => s.includes(marker))) out.push(Number(name));
  }
  return out;
}

export async function killProcessesMentioning(marker: string, timeoutMs = 10_000): Promise<void> {
  const pids = await processesMentioning(marker);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  const deadline = Date.now() + timeoutMs;
  while ((await processesMentioning(marker)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const mps = text
    .split("\n")
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`));
  return [...new Set(mps)].sort((a, b) => b.length - a.length);
}

export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 8; round++) {
    const mps = await mountsUnder(dir);
    if (mps.length === 0) return;
    for (const mp of mps) {
      if ((await tryRun("umount", [mp], { timeoutMs: 10_000 })) === undefined) await tryRun("umount", ["-l", mp], { timeoutMs: 10_000 });
    }
  }
}
