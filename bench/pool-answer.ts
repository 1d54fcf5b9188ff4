// How fast a running pool daemon answers (the `status` op: the same socket and event loop as a
// shim's take, without using a VM up), placed as this build places it (normal: its own cgroup at
// the default CPU weight, nice 0) and as the daemon was placed before (low: refill_nice in the
// VMs' low-weight cgroup), alternated within one run on the same daemon so both see the same
// load. The daemon is a real `kata-ts pool serve` with a state dir of its own (it pools one VM at
// low priority meanwhile, as it would on a node); stopped at the end.
// Usage: node dist/bench/pool-answer.js [--calls N] [--json]
import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { loadavg, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { poolPaths } from "../src/pool/layout.js";
import { joinPoolCgroup, POOL_VMS_CGROUP } from "../src/pool/priority.js";
import { poolCall } from "../src/pool/protocol.js";
import { joinCgroup } from "../src/sandbox/host-cgroup.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";
import { describeSpread, figuresLine, median } from "./lib/figures.js";

const USAGE = `usage: node dist/bench/pool-answer.js [--calls N] [--json]

A pool daemon's answer time (ms), placed normal (this build) and low (as before), alternated.

  --calls N  calls per placement (default 90, in 6 alternating blocks)
  --json     end with one line {"figures": {...}}
  --help     this text`;

const argv = parseBenchArgs(USAGE, { options: { calls: { type: "string", default: "90" }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const calls = checkOptions(USAGE, () => intOption("calls", argv.calls, 6));
const repoRoot = join(import.meta.dirname, "..", "..");

const dir = await mkdtemp(join(tmpdir(), "kts-bench-pool-answer-"));
const configPath = join(dir, "configuration.toml");
await writeFile(configPath, "[factory]\nwarm_up_containers = false\n");
const state = join(dir, "state");
const daemon = spawn(process.execPath, [join(repoRoot, "bin", "kata-ts.js"), "pool", "serve", "--config", configPath], { env: { ...process.env, KATA_TS_STATE_DIR: state }, stdio: "ignore" });
const exited = new Promise((resolve) => daemon.once("exit", resolve));
const pid = daemon.pid ?? -1;
const paths = poolPaths(join(state, "kata-ts-pool"));

async function renice(nice: number): Promise<void> {
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    try {
      setPriority(Number(tid), nice);
    } catch {
      // a thread that just ended
    }
  }
}

const ms = { normal: [] as number[], low: [] as number[] };
try {
  const deadline = Date.now() + 120_000;
  while ((await poolCall(paths.socket, { op: "status" }, 2000).catch(() => undefined))?.ok !== true) {
    if (Date.now() > deadline) throw new Error(`the pool daemon did not answer at ${paths.socket} within 120 s`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const perBlock = Math.ceil(calls / 3);
  for (let block = 0; block < 6; block++) {
    for (const mode of block % 2 === 0 ? (["normal", "low"] as const) : (["low", "normal"] as const)) {
      if (mode === "low") {
        await joinCgroup(`/${POOL_VMS_CGROUP}`, pid);
        await renice(19);
      } else {
        await joinPoolCgroup(pid);
        await renice(0);
      }
      for (let i = 0; i < perBlock / 2; i++) {
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
        const t0 = performance.now();
        await poolCall(paths.socket, { op: "status" }, 30_000);
        ms[mode].push(performance.now() - t0);
      }
    }
  }
} finally {
  await joinPoolCgroup(pid).catch(() => undefined);
  daemon.kill("SIGTERM");
  await exited;
  await rm(dir, { recursive: true, force: true });
}
const p90 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)] ?? NaN;
for (const m of ["normal", "low"] as const) process.stdout.write(`${m}: answer ms ${describeSpread(ms[m].map((x) => Math.round(x * 10) / 10))}  p90 ${p90(ms[m]).toFixed(1)} (${ms[m].length} calls)\n`);
process.stdout.write(`load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
if (argv.json) process.stdout.write(`${figuresLine({ pool_answer_normal_ms: median(ms.normal), pool_answer_low_ms: median(ms.low), pool_answer_normal_p90_ms: p90(ms.normal), pool_answer_low_p90_ms: p90(ms.low), load_average: loadavg()[0] ?? NaN })}\n`);
