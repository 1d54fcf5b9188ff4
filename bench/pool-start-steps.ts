// Where a pooled VM's TCG translation cache goes, step by step (issue 13): a VM booted exactly as
// the pool boots it (PooledVm.boot: PrepareSandbox with the container warm-up), left idle, adopted
// (Sandbox.create with the pool's adopter: CreateSandbox), then UpdateNetwork, the first container's
// CreateContainer and StartContainer, and three execs of `true`. Per step: QEMU's CPU
// (utime+stime, all threads), wall, and HMP `info jit` before and after (flushes, host code in
// the buffer). Variants are booted in turns each round (interleaved, same load).
// Usage: see USAGE (`node dist/bench/pool-start-steps.js --help`).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { parseConfig, selectedVmmConfig } from "../src/config/index.js";
import { vmLayout } from "../src/hypervisor/qemu/layout.js";
import { QmpClient } from "../src/hypervisor/qemu/qmp.js";
import { flushTcgCache } from "../src/hypervisor/qemu/tcg-flush.js";
import { adoptPooledVm } from "../src/pool/adopt.js";
import { PooledVm } from "../src/pool/pooled-vm.js";
import { podAssets, poolShape, rehearsesPodPath, type PoolShape } from "../src/pool/shape.js";
import { loadGuestAssets } from "../src/guest/assets.js";
import { runSpec } from "../src/sandbox/default-spec.js";
import { guestNetworkView } from "../src/sandbox/network/pod-network.js";
import type { NetnsSnapshot } from "../src/sandbox/network/inspect.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { createLogger } from "../src/util/log.js";
import { makeBusyboxRootfs } from "../test/integration/agent-container-fixture.js";
import { checkOptions, exitWithUsage, intOption, parseBenchArgs } from "./lib/args.js";
import { figuresLine, median } from "./lib/figures.js";

const USAGE = `usage: node dist/bench/pool-start-steps.js [--runs N] [--idle-s S] [--variant NAME:KEY=VAL,...]... [--json]

Per round, one VM per variant booted as the pool boots it, then adopted and given a first container:
per step QEMU CPU ms, wall ms and TCG flushes / cache fill (HMP info jit).

  --runs N        rounds (default 1)
  --idle-s S      seconds a prepared VM stays pooled before its adoption (default 5)
  --variant SPEC  NAME:KEY=VAL,... (repeatable; default one variant "default"); keys:
                  tb=MiB (tcg_tb_size), cmdline=WORD (appended to the kernel command line; repeat
                  the key for more), warm=0|1 (the container warm-up, default 1), flush=1 (flush
                  TCG's cache once prepared), rehearse=0|1 (the pool's flush and pod path
                  rehearsal, default as [factory] rehearse_pod_path: on; tb= then defaults
                  to [factory] tcg_tb_size), pool-from=DIST (another build's
                  dist/ dir whose PooledVm boots the VM, e.g. /work/main/dist),
                  assets=DIR (other guest assets, e.g. a scratch build-assets --dir)
  --json          end with one line {"figures": {...}}
  --help          this text`;

const argv = parseBenchArgs(USAGE, { options: { runs: { type: "string", default: "1" }, "idle-s": { type: "string", default: "5" }, variant: { type: "string", multiple: true, default: [] }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const N = checkOptions(USAGE, () => intOption("runs", argv.runs, 1));
const idleS = checkOptions(USAGE, () => intOption("idle-s", argv["idle-s"], 0));

interface Variant {
  name: string;
  tb?: number;
  cmdline: string[];
  warm: boolean;
  /** Flush TCG's cache once the VM is prepared (before its idle time). */
  flush: boolean;
  /** The pool's flush + rehearsal of the pod path (BootPolicy.rehearsePodPath). */
  rehearse: boolean;
  /** Boot with another build's PooledVm (dist dir), e.g. main's, for an A/B of the pool's boot. */
  poolFrom?: string;
  /** Guest assets from this dir (KATA_TS_ASSETS_DIR's layout) instead of the configured ones. */
  assets?: string;
}

function parseVariant(spec: string): Variant {
  const [name, rest = ""] = spec.split(/:(.*)/s) as [string, string?];
  if (!/^[a-z0-9_-]+$/i.test(name)) exitWithUsage(USAGE, `--variant ${JSON.stringify(spec)}: the name must be letters, digits, - or _`);
  const v: Variant = { name, cmdline: [], warm: true, flush: false, rehearse: rehearsesPodPath(config) };
  for (const kv of rest === "" ? [] : rest.split(",")) {
    const [k, val = ""] = kv.split(/=(.*)/s) as [string, string?];
    if (k === "tb") v.tb = checkOptions(USAGE, () => intOption("tb", val, 4));
    else if (k === "cmdline") v.cmdline.push(val);
    else if (k === "warm") v.warm = val !== "0";
    else if (k === "flush") v.flush = val !== "0";
    else if (k === "rehearse") v.rehearse = val !== "0";
    else if (k === "pool-from") v.poolFrom = val;
    else if (k === "assets") v.assets = val;
    else exitWithUsage(USAGE, `--variant ${JSON.stringify(spec)}: unknown key ${JSON.stringify(k)} (tb, cmdline, warm, flush, rehearse, pool-from, assets)`);
  }
  return v;
}
const config = parseConfig("", "built-in defaults");
const vmm = selectedVmmConfig(config);
const variants = argv.variant.length === 0 ? [parseVariant("default")] : argv.variant.map(parseVariant);

const TICK_MS = 10;
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) * TICK_MS;
}

interface Jit {
  flushes: number;
  fillMiB: number;
}
function parseJit(text: string): Jit {
  return { flushes: Number(/TB flush count\s+(\d+)/.exec(text)?.[1] ?? NaN), fillMiB: Number(/gen code size\s+(\d+)/.exec(text)?.[1] ?? NaN) / 1048576 };
}
type Hmp = { execute(c: "human-monitor-command", a: { "command-line": string }): Promise<string> };
async function jitOf(qmp: Hmp): Promise<Jit> {
  return parseJit(await qmp.execute("human-monitor-command", { "command-line": "info jit" }).catch(() => ""));
}

class Sink extends Writable {
  override _write(_c: Buffer, _e: BufferEncoding, cb: () => void): void {
    cb();
  }
}

const STEPS = ["prepared", "idle", "flush", "adopt", "network", "create", "start", "exec1", "exec2", "exec3"] as const;
type Step = (typeof STEPS)[number];
interface StepFigure {
  cpu: number;
  wall: number;
  flushes: number;
  fillAfterMiB: number;
}

const baseShape = poolShape(config, await podAssets(config), { vcpus: vmm.default_vcpus, memoryMiB: vmm.default_memory }, "");
const dir = await mkdtemp(join(tmpdir(), "kts-bench-poolsteps-"));
const stateRoot = join(dir, "state");
process.env.KATA_TS_STATE_DIR = stateRoot;
const rootfs = join(dir, "rootfs");
await makeBusyboxRootfs(rootfs);
const log = createLogger("bench.pool-start-steps");
const POD_MAC = "02:42:0a:58:00:05";

type VmFigures = Record<Step, StepFigure> & { memory: { pssMiB: number; anonMiB: number } };

async function oneVm(v: Variant, round: number): Promise<VmFigures> {
  const base = v.assets === undefined ? baseShape : poolShape(config, await loadGuestAssets(v.assets), { vcpus: vmm.default_vcpus, memoryMiB: vmm.default_memory }, "");
  const tb = v.tb ?? (v.rehearse ? config.factory.tcg_tb_size : config.hypervisor.qemu.tcg_tb_size);
  const shape: PoolShape = { ...base, tcgTbSizeMiB: tb, kernelCmdline: [...base.kernelCmdline, ...v.cmdline] };
  const out = {} as Record<Step, StepFigure>;
  let memory = { pssMiB: Number.NaN, anonMiB: Number.NaN };
  const tBoot = performance.now();
  const Pooled = v.poolFrom === undefined ? PooledVm : ((await import(join(v.poolFrom, "src/pool/pooled-vm.js"))) as { PooledVm: typeof PooledVm }).PooledVm;
  const pooled = await Pooled.boot(shape, join(dir, "vms"), { bootTimeoutMs: 900_000, warmUpContainers: v.warm, ...(v.rehearse ? { rehearsePodPath: true } : {}) });
  const pid = pooled.handle.qemuPid;
  // Pooled: the pool holds its agent connection and QMP until the hand-over (QEMU CPU only here).
  const cpuPrepared = await cpuMs(pid);
  const wallPrepared = performance.now() - tBoot;
  await sleep(idleS * 1000);
  const cpuIdle = (await cpuMs(pid)) - cpuPrepared;
  const handle = pooled.handOver();
  const qmp = await QmpClient.connect(vmLayout(join(handle.dir, "vm")).qmpSocketPath, { timeoutMs: 10_000 });
  let jit = await jitOf(qmp as unknown as Hmp);
  let cpu = await cpuMs(pid);
  out.prepared = { cpu: cpuPrepared, wall: wallPrepared, flushes: jit.flushes, fillAfterMiB: Number.NaN };
  out.idle = { cpu: cpuIdle, wall: idleS * 1000, flushes: Number.NaN, fillAfterMiB: jit.fillMiB };
  process.stdout.write(`  ${Date.now()} ${v.name} prepared (boot + PrepareSandbox): ${cpuPrepared} ms CPU, ${Math.round(wallPrepared)} ms wall; then pooled ${idleS} s: ${cpuIdle} ms CPU; ${jit.flushes} flush(es) since start, cache ${jit.fillMiB.toFixed(1)} MiB\n`);
  let t = performance.now();
  const mark = async (step: Step, hmp: Hmp): Promise<void> => {
    const j = await jitOf(hmp);
    const c = await cpuMs(pid);
    const now = performance.now();
    out[step] = { cpu: c - cpu, wall: now - t, flushes: j.flushes - jit.flushes, fillAfterMiB: j.fillMiB };
    process.stdout.write(`  ${Date.now()} ${v.name} ${step}: ${out[step].cpu} ms CPU, ${Math.round(out[step].wall)} ms wall, ${out[step].flushes} flush(es), cache ${j.fillMiB.toFixed(1)} MiB after\n`);
    jit = j;
    cpu = c;
    t = now;
  };
  try {
    const hmp0 = (line: string, _ms: number): Promise<string> => (qmp as unknown as Hmp).execute("human-monitor-command", { "command-line": line });
    if (v.flush) await flushTcgCache(hmp0, join(handle.dir, "vm", "gdb.sock"));
    await mark("flush", qmp as unknown as Hmp);
  } catch (err) {
    qmp.close();
    await pooled.reclaimUntaken();
    throw err;
  }
  qmp.close();
  await qmp.closed;
  const sb = await Sandbox.create({ id: `steps-${v.name}-${round}-${process.pid}`, adopt: adoptPooledVm({ handle, podNetns: {} as NetnsSnapshot }, log) });
  try {
    const hmp = (sb.vm as unknown as { qmp: Hmp }).qmp;
    await mark("adopt", hmp);
    const net = guestNetworkView(
      [{ name: "eth0", mac: POD_MAC, currentMac: handle.mac, mtu: 1500, addresses: [{ family: 4, address: "10.88.0.5", prefixLength: 16 }] }],
      [
        { dest: "", gateway: "10.88.0.1", device: "eth0", source: "", scope: 0, family: 4 },
        { dest: "10.88.0.0/16", gateway: "", device: "eth0", source: "10.88.0.5", scope: 253, family: 4 },
      ],
    );
    await sb.agent.updateNetwork(net.interfaces, net.routes);
    await mark("network", hmp);
    const ctr = await sb.createContainer({ id: "app", spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
    await mark("create", hmp);
    await ctr.start();
    await mark("start", hmp);
    for (const step of ["exec1", "exec2", "exec3"] as const) {
      const p = await ctr.exec(step, { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
      const [, , st] = await Promise.all([p.pumpOutput("stdout", new Sink()), p.pumpOutput("stderr", new Sink()), p.wait()]);
      if (st.status !== 0) throw new Error(`exec of true exited ${st.status}`);
      await mark(step, hmp);
    }
    // The VM's memory once the pod's first calls are done (the TCG buffer is resident as far as it was filled).
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
    const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? NaN);
    memory = { pssMiB: kib("Pss") / 1024, anonMiB: kib("Pss_Anon") / 1024 };
    process.stdout.write(`  ${v.name} QEMU after exec3: PSS ${memory.pssMiB.toFixed(1)} MiB, of it anonymous ${memory.anonMiB.toFixed(1)} MiB\n`);
  } finally {
    await sb.destroy();
  }
  return { ...out, memory };
}

const results = new Map<string, VmFigures[]>();
const loads: number[] = [];
try {
  for (let r = 0; r < N; r++) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      process.stdout.write(`round ${r + 1} ${v.name} (load ${loadavg()[0]!.toFixed(1)})\n`);
      const got = await oneVm(v, r);
      loads.push(loadavg()[0]!);
      (results.get(v.name) ?? results.set(v.name, []).get(v.name)!).push(got);
    }
  }
} finally {
  delete process.env.KATA_TS_STATE_DIR;
  await rm(dir, { recursive: true, force: true });
}
const figures: Record<string, number> = {};
for (const [name, xs] of results) {
  const parts: string[] = [];
  for (const step of STEPS) {
    const cpu = median(xs.map((x) => x[step].cpu));
    const wall = median(xs.map((x) => x[step].wall));
    figures[`${name}_${step}_cpu_ms`] = cpu;
    figures[`${name}_${step}_wall_ms`] = wall;
    figures[`${name}_${step}_flushed_runs`] = xs.filter((x) => x[step].flushes > 0).length;
    parts.push(`${step} ${cpu}/${Math.round(wall)}${xs.some((x) => x[step].flushes > 0) ? `(F${xs.filter((x) => x[step].flushes > 0).length})` : ""}`);
  }
  figures[`${name}_cache_before_start_mib`] = median(xs.map((x) => x.create.fillAfterMiB));
  figures[`${name}_qemu_pss_mib`] = median(xs.map((x) => x.memory.pssMiB));
  figures[`${name}_qemu_anon_pss_mib`] = median(xs.map((x) => x.memory.anonMiB));
  const podPath = median(xs.map((x) => (["adopt", "network", "create", "start", "exec1", "exec2", "exec3"] as const).reduce((sum, st) => sum + x[st].cpu, 0)));
  figures[`${name}_pod_path_cpu_ms`] = podPath;
  parts.push(`pod path (adopt..exec3) ${podPath} ms CPU, QEMU PSS ${figures[`${name}_qemu_pss_mib`]!.toFixed(1)} MiB (anon ${figures[`${name}_qemu_anon_pss_mib`]!.toFixed(1)})`);
  process.stdout.write(`${name}: CPU/wall ms medians, (Fn: runs with a flush): ${parts.join(", ")}\n`);
}
const load = median(loads);
process.stdout.write(`(medians of ${N} round(s), variants interleaved; load average median ${load.toFixed(1)})\n`);
if (argv.json) process.stdout.write(`${figuresLine({ ...figures, runs: N, load_average: load })}\n`);
