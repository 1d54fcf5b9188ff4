// What starting a process already in a pod's cgroups costs (src/util/start-in-cgroups.ts: /bin/sh
// writes its pid into each dir's cgroup.procs, then execs the command), against spawning the
// command directly: `/bin/true` spawned and reaped, wall time per spawn and its CPU (the reaped
// children's utime+stime, this process's cutime/cstime), in three placements alternated in blocks
// so that all see the same load: direct; through the shell into plain directories (the shell and
// the exec alone); through the shell into a real cgroup made in every hierarchy (what a pod's QEMU
// and virtiofsd pay: the kernel's cgroup moves as well). Needs root for the last; removed at the end.
// Usage: node dist/bench/cgroup-exec.js [--spawns N] [--json]
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { makeCgroup } from "../src/sandbox/host-cgroup.js";
import { startInCgroups } from "../src/util/start-in-cgroups.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";
import { describeSpread, figuresLine, median } from "./lib/figures.js";

const USAGE = `usage: node dist/bench/cgroup-exec.js [--spawns N] [--json]

Per spawn of /bin/true (ms wall, ms CPU): direct, through the cgroup shell into plain dirs, into real cgroups.

  --spawns N  spawns per placement (default 200, in 10 alternating blocks)
  --json      end with one line {"figures": {...}}
  --help      this text`;

const argv = parseBenchArgs(USAGE, { options: { spawns: { type: "string", default: "200" }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const spawns = checkOptions(USAGE, () => intOption("spawns", argv.spawns, 10));

function runOnce(binary: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${binary} exited ${code}`))));
  });
}

/** The reaped children's CPU so far, ms (/proc/self/stat cutime + cstime, clock ticks of 10 ms). */
async function childrenCpuMs(): Promise<number> {
  const stat = await readFile("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

// On tmpfs: creating the plain cgroup.procs files costs next to nothing (on /tmp, ext4 here, it did not).
const plainRoot = await mkdtemp(join("/dev/shm", "kts-bench-cgexec-"));
const made = await makeCgroup(`/kata-ts-bench-cgexec-${process.pid}`);
const plain: string[] = [];
for (let i = 0; i < made.dirs.length; i++) {
  plain.push(join(plainRoot, String(i)));
  await mkdir(join(plainRoot, String(i)));
}
const modes = {
  direct: { binary: "/bin/true", args: [] as string[] },
  shell: startInCgroups(plain, "/bin/true", []),
  cgroups: startInCgroups(made.dirs, "/bin/true", []),
};
type Mode = keyof typeof modes;
const wall: Record<Mode, number[]> = { direct: [], shell: [], cgroups: [] };
const cpu: Record<Mode, number> = { direct: 0, shell: 0, cgroups: 0 };
const load0 = loadavg()[0] ?? NaN;
try {
  const blocks = 10;
  const perBlock = Math.ceil(spawns / blocks);
  for (let b = 0; b < blocks; b++) {
    const order: Mode[] = b % 2 === 0 ? ["direct", "shell", "cgroups"] : ["cgroups", "shell", "direct"];
    for (const mode of order) {
      const { binary, args } = modes[mode];
      const c0 = await childrenCpuMs();
      for (let i = 0; i < perBlock; i++) {
        const t0 = performance.now();
        await runOnce(binary, args);
        wall[mode].push(performance.now() - t0);
      }
      cpu[mode] += (await childrenCpuMs()) - c0;
    }
  }
} finally {
  await made.remove(2000);
  await rm(plainRoot, { recursive: true, force: true });
}

const figures: Record<string, number> = {};
console.log(`${made.dirs.length} hierarchies; load average ${load0.toFixed(1)} -> ${(loadavg()[0] ?? NaN).toFixed(1)}`);
for (const mode of Object.keys(modes) as Mode[]) {
  const n = wall[mode].length;
  console.log(`${mode.padEnd(8)} wall ms per spawn: ${describeSpread(wall[mode])}; CPU ms per spawn ${(cpu[mode] / n).toFixed(2)} (n=${n})`);
  figures[`${mode}_wall_ms`] = median(wall[mode]);
  figures[`${mode}_cpu_ms`] = cpu[mode] / n;
}
if (argv.json) console.log(figuresLine(figures));
