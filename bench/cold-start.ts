// A fresh VM's first container start and first execs, split by what the guest runs (issue 13 item
// 4). Each round boots one fresh sandbox per variant (variants interleaved, so they share the
// host's load), then times the first container's create+start and three execs of `true` in it:
// wall time and the host CPU of QEMU and virtiofsd (utime+stime of every thread; under load CPU is
// the work, wall mostly the load). Variants: the default guest (DAX root on virtio-pmem, agent
// `--jitless`); `blk` the same image on virtio-blk (no DAX: the guest's page cache); `warm` the
// default guest with the container warm-up a pooled VM runs (kata_ts.warm_up=containers), measured
// once its console says the warm-up is done; `alt` and `alt-warm` the same two with other assets
// (COLD_ALT_ASSETS=DIR: e.g. an agent built without --jitless, AGENT_NODE_ARGS emptied, or an
// older agent). `--tb LIST` runs every variant once per TCG translation cache size (MiB), e.g.
// `warm-tb40` and `warm-tb64`: whether the warm-up's translations survive until the first start
// depends on it (docs/containers.md "Container start in the guest"). HMP `info jit` says whether
// the cache was flushed during the create+start and how full it was before.
// Usage: see USAGE below (`node dist/bench/cold-start.js --help`).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { runSpec } from "../src/sandbox/default-spec.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { readRecord } from "../src/sandbox/state-file.js";
import { loadGuestAssets, type GuestAssets } from "../src/guest/assets.js";
import { QemuHypervisor } from "../src/hypervisor/qemu/index.js";
import { WARM_UP_CONTAINERS } from "../src/protocol/contract/guest.js";
import { makeBusyboxRootfs } from "../test/integration/agent-container-fixture.js";
import { checkOptions, exitWithUsage, intOption, parseBenchArgs } from "./lib/args.js";

const ALL = ["default", "blk", "warm", "alt", "alt-warm"] as const;
type Variant = (typeof ALL)[number];

const USAGE = `usage: node dist/bench/cold-start.js [--runs N] [--variants LIST] [--tb LIST] [--json]

Per round, one fresh VM per variant (interleaved): the first container's create+start and its
first three execs of \`true\`; wall time and QEMU+virtiofsd CPU time (medians over rounds).

  --runs N         rounds (default 3)
  --variants LIST  comma-separated, of: ${ALL.join(", ")} (default: all; alt* need COLD_ALT_ASSETS)
                   default  DAX root (virtio-pmem), agent --jitless (the configured guest)
                   blk      the same image on virtio-blk (no DAX)
                   warm     the default guest with kata_ts.warm_up=containers, once warmed up
                   alt      COLD_ALT_ASSETS=DIR: other assets (e.g. an agent without --jitless)
                   alt-warm the same with kata_ts.warm_up=containers, once warmed up
  --tb LIST        comma-separated TCG translation cache sizes in MiB: each variant once per size,
                   named <variant>-tb<size> (default: the configured size only)
  --json           end with one line {"figures": {...}}
  --help           this text`;

const argv = parseBenchArgs(USAGE, { options: { runs: { type: "string", default: "3" }, variants: { type: "string", default: "" }, tb: { type: "string", default: "" }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const N = checkOptions(USAGE, () => intOption("runs", argv.runs, 1));
const tbSizes = checkOptions(USAGE, () => (argv.tb === "" ? [undefined] : argv.tb.split(",").map((t) => intOption("tb", t, 4))));
const wanted = (argv.variants === "" ? ALL.filter((v) => !v.startsWith("alt") || process.env.COLD_ALT_ASSETS !== undefined) : argv.variants.split(",")) as Variant[];
for (const v of wanted) if (!ALL.includes(v)) exitWithUsage(USAGE, `--variants: unknown variant ${JSON.stringify(v)}`);
if (wanted.some((v) => v.startsWith("alt")) && process.env.COLD_ALT_ASSETS === undefined) exitWithUsage(USAGE, "--variants alt and alt-warm need COLD_ALT_ASSETS=DIR (the other guest assets)");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

class Sink extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    cb();
  }
}

const TICK_MS = 1000 / 100; // USER_HZ

/** utime+stime (ms) of the given processes, all threads (/proc/<pid>/stat fields 14 and 15). */
async function cpuMs(pids: number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(f[11] ?? 0) + Number(f[12] ?? 0);
  }
  return ticks * TICK_MS;
}

interface Steps {
  /** CreateContainer and StartContainer (the shim's two calls) apart, and together. */
  create: { wall: number; cpu: number };
  startOnly: { wall: number; cpu: number };
  start: { wall: number; cpu: number };
  execs: { wall: number; cpu: number }[];
  /** TCG: host code in the translation cache before the create (MiB), flushes during create+start. */
  tcgFillMiB: number;
  tcgFlushes: number;
}

type Qmp = { execute(c: "human-monitor-command", a: { "command-line": string }): Promise<string> };

/** TCG's counters from HMP `info jit`: flushes so far and host code in the cache (MiB). */
async function tcgCounters(sb: Sandbox): Promise<{ flushes: number; fillMiB: number }> {
  const qmp = (sb.vm as unknown as { qmp?: Qmp }).qmp;
  const text = (await qmp?.execute("human-monitor-command", { "command-line": "info jit" }).catch(() => "")) ?? "";
  const num = (re: RegExp): number => Number(re.exec(text)?.[1] ?? Number.NaN);
  return { flushes: num(/TB flush count\s+(\d+)/), fillMiB: num(/gen code size\s+(\d+)/) / 1048576 };
}

async function waitWarmUp(consoleLog: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const text = await readFile(consoleLog, "utf8").catch(() => "");
    if (/container warm-up (done|failed)/.test(text)) {
      if (/container warm-up failed/.test(text)) throw new Error(`the warm-up failed:\n${text}`);
      return;
    }
    await sleep(500);
  }
  throw new Error("no warm-up in 300 s");
}

async function oneVm(variant: Variant, tb: number | undefined, id: string, stateRoot: string, rootfs: string, assets: { main: GuestAssets; alt?: GuestAssets }): Promise<Steps> {
  const base = variant.startsWith("alt") ? assets.alt! : assets.main;
  const warm = variant.endsWith("warm");
  const vmAssets = warm ? { ...base, kernelCmdline: [...base.kernelCmdline, WARM_UP_CONTAINERS] } : base;
  const hypervisor = await QemuHypervisor.open({ ...(variant === "blk" ? { imageDevice: "disk" as const } : {}), ...(tb === undefined ? {} : { tcgTbSizeMiB: tb }) });
  const sb = await Sandbox.create({ id, assets: vmAssets, hypervisor, bootTimeoutMs: 300_000 });
  try {
    if (warm) await waitWarmUp(sb.vm!.consoleLogPath);
    // Let the boot's tail (page reporting, the drop of the boot cache) settle, the same for all.
    await sleep(2000);
    const rec = await readRecord(join(stateRoot, id, "state.json"));
    const pids = [rec.vmPid, rec.virtiofsdPid].filter((p): p is number => p !== undefined);
    const tcg0 = await tcgCounters(sb);
    const c0 = await cpuMs(pids);
    const t0 = performance.now();
    const ctr = await sb.createContainer({ id: "app", spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
    const c1 = await cpuMs(pids);
    const t1 = performance.now();
    await ctr.start();
    const c2 = await cpuMs(pids);
    const t2 = performance.now();
    const tcg1 = await tcgCounters(sb);
    const create = { wall: t1 - t0, cpu: c1 - c0 };
    const startOnly = { wall: t2 - t1, cpu: c2 - c1 };
    const start = { wall: t2 - t0, cpu: c2 - c0 };
    const execs: Steps["execs"] = [];
    for (let i = 0; i < 3; i++) {
      const e0 = await cpuMs(pids);
      const s0 = performance.now();
      const p = await ctr.exec(`e${i}`, { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
      const [, , st] = await Promise.all([p.pumpOutput("stdout", new Sink()), p.pumpOutput("stderr", new Sink()), p.wait()]);
      if (st.status !== 0) throw new Error(`exec of true exited ${st.status}`);
      execs.push({ wall: performance.now() - s0, cpu: (await cpuMs(pids)) - e0 });
    }
    return { create, startOnly, start, execs, tcgFillMiB: tcg0.fillMiB, tcgFlushes: tcg1.flushes - tcg0.flushes };
  } finally {
    await sb.destroy();
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-bench-cold-"));
  const stateRoot = join(dir, "state");
  process.env.KATA_TS_STATE_DIR = stateRoot;
  const rootfs = join(dir, "rootfs");
  await makeBusyboxRootfs(rootfs);
  const assets = { main: await loadGuestAssets(), ...(process.env.COLD_ALT_ASSETS === undefined ? {} : { alt: await loadGuestAssets(process.env.COLD_ALT_ASSETS) }) };
  const results = new Map<string, Steps[]>();
  const loads: number[] = [];
  try {
    for (let r = 0; r < N; r++) {
      for (const v of wanted) {
        for (const tb of tbSizes) {
          const name = tb === undefined ? v : `${v}-tb${tb}`;
          const steps = await oneVm(v, tb, `cold-${name}-${r}-${process.pid}`, stateRoot, rootfs, assets);
          loads.push(loadavg()[0]!);
          (results.get(name) ?? results.set(name, []).get(name)!).push(steps);
          console.log(
            `round ${r} ${name.padEnd(8)} create+start ${steps.start.cpu.toFixed(0)} ms CPU (create ${steps.create.cpu.toFixed(0)}, start ${steps.startOnly.cpu.toFixed(0)}) / ${steps.start.wall.toFixed(0)} wall; ` +
              `TCG cache ${steps.tcgFillMiB.toFixed(1)} MiB before, ${steps.tcgFlushes} flush(es) in create+start; execs CPU ${steps.execs.map((e) => e.cpu.toFixed(0)).join(" / ")}, wall ${steps.execs.map((e) => e.wall.toFixed(0)).join(" / ")} (load ${loadavg()[0]!.toFixed(1)})`,
          );
        }
      }
    }
  } finally {
    delete process.env.KATA_TS_STATE_DIR;
    await rm(dir, { recursive: true, force: true });
  }
  const figures: Record<string, number> = {};
  for (const [v, xs] of results) {
    const f = (name: string, vals: number[]): void => {
      figures[`${v.replaceAll("-", "_")}_${name}`] = Math.round(median(vals));
    };
    f("start_cpu_ms", xs.map((x) => x.start.cpu));
    f("start_wall_ms", xs.map((x) => x.start.wall));
    f("create_only_cpu_ms", xs.map((x) => x.create.cpu));
    f("start_only_cpu_ms", xs.map((x) => x.startOnly.cpu));
    f("start_only_wall_ms", xs.map((x) => x.startOnly.wall));
    figures[`${v.replaceAll("-", "_")}_tcg_flushed_runs`] = xs.filter((x) => x.tcgFlushes > 0).length;
    for (let i = 0; i < 3; i++) {
      f(`exec${i + 1}_cpu_ms`, xs.map((x) => x.execs[i]!.cpu));
      f(`exec${i + 1}_wall_ms`, xs.map((x) => x.execs[i]!.wall));
    }
    // The pod-start bench's exec figure: the median of a fresh pod's first three execs.
    f("first3_exec_wall_ms", xs.map((x) => median(x.execs.map((e) => e.wall))));
    f("first3_exec_cpu_ms", xs.map((x) => median(x.execs.map((e) => e.cpu))));
    const k = v.replaceAll("-", "_");
    console.log(`${v.padEnd(8)} create+start CPU ${figures[`${k}_start_cpu_ms`]} ms (start ${figures[`${k}_start_only_cpu_ms`]}), TCG flushed in ${figures[`${k}_tcg_flushed_runs`]} of ${xs.length}, wall ${figures[`${k}_start_wall_ms`]} ms; exec 1/2/3 CPU ${[1, 2, 3].map((i) => figures[`${k}_exec${i}_cpu_ms`]).join(" / ")} ms, wall ${[1, 2, 3].map((i) => figures[`${k}_exec${i}_wall_ms`]).join(" / ")} ms`);
  }
  const load = Math.round(median(loads) * 10) / 10;
  console.log(`(medians of ${N} rounds, variants interleaved; load average median ${load})`);
  if (argv.json) console.log(JSON.stringify({ figures: { ...figures, runs: N, load_average: load } }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
