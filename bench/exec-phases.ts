// Where an exec round trip goes (issue 13 item 4). In one sandbox, interleaved, exec of `true`
// through the sandbox layer (what a shim does for CRI ExecSync): ExecProcess until the agent has
// the pid, then the exit, WaitProcess and the two output EOFs; one agent RPC alone; and variants
// that isolate one cost each: the exec'd binary on the guest's tmpfs instead of virtio-fs; with
// AB_ASLR=1 the same exec in a second sandbox whose guest has address-space randomization off; with
// AB_ASSETS=DIR in a second sandbox booted from the guest assets in DIR (an agent or image change);
// with AB_TB=MiB in a second sandbox whose QEMU has that TCG translation cache size. BENCH_TB=MiB
// gives every sandbox of the run that translation cache size (default: the configured one).
// TCG's counters (HMP `info jit`) give the host code translated per exec.
// Besides wall time it reports the host CPU time QEMU (the emulated guest) and virtiofsd spent per
// exec: on a loaded host wall time mostly measures the load, CPU time the work.
// Usage: see USAGE below (`node dist/bench/exec-phases.js --help`).
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { runSpec } from "../src/sandbox/default-spec.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { readRecord } from "../src/sandbox/state-file.js";
import { loadGuestAssets } from "../src/guest/assets.js";
import { QemuHypervisor } from "../src/hypervisor/qemu/index.js";
import { makeBusyboxRootfs } from "../test/integration/agent-container-fixture.js";
import { checkOptions, intEnv, intOption, parseBenchArgs } from "./lib/args.js";

const USAGE = `usage: node dist/bench/exec-phases.js [--runs N] [--json]     (environment: see below)

In one sandbox (a real VM), interleaved: exec of \`true\` through the sandbox layer (until the agent
has the pid, then to the exit and output EOFs), \`true\` from the guest's tmpfs instead of virtio-fs,
and one agent RPC alone; wall time, QEMU+virtiofsd CPU time and TCG code generated per exec (medians).

  --runs N      rounds of every variant (default 10)
  --json        end with one line {"figures": {...}}
  --help        this text

Environment:
  BENCH_TB=MiB  TCG translation cache size of every sandbox of the run (default: the configured one)
  AB_ASLR=1     also a second sandbox whose guest has address-space randomization off
  AB_ASSETS=DIR also a second sandbox booted from the guest assets in DIR (an agent or image change)
  AB_TB=MiB     also a second sandbox whose QEMU has that TCG translation cache size
                (one second sandbox at most: AB_ASSETS, else AB_TB, else AB_ASLR)
  SHOW_JIT=1    print QEMU's \`info jit\` at the end`;

const argv = parseBenchArgs(USAGE, { options: { runs: { type: "string", default: "10" }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const { N, benchTbMiB, abTbMiB } = checkOptions(USAGE, () => ({ N: intOption("runs", argv.runs, 1), benchTbMiB: intEnv("BENCH_TB", 1), abTbMiB: intEnv("AB_TB", 1) }));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

class Collect extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

/** CPU time (ms) of all threads of the given processes, from /proc/<pid>/task/<tid>/schedstat (ns). */
async function cpuMs(pids: number[]): Promise<number> {
  let ns = 0;
  for (const pid of pids) {
    const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
    for (const tid of tids) {
      const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, "utf8").catch(() => "0");
      ns += Number(text.split(" ")[0]);
    }
  }
  return ns / 1e6;
}

interface Sample {
  wall: number;
  rpc: number;
  cpu: number;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-bench-exec-"));
  const stateRoot = join(dir, "state");
  process.env.KATA_TS_STATE_DIR = stateRoot;
  const figures: Record<string, number> = {};
  const rootfs = join(dir, "rootfs");
  await makeBusyboxRootfs(rootfs);
  const id = `bench-exec-${process.pid}`;
  const hv = benchTbMiB !== undefined ? { hypervisor: await QemuHypervisor.open({ tcgTbSizeMiB: benchTbMiB }) } : {};
  const sb = await Sandbox.create({ id, bootTimeoutMs: 180_000, ...hv });
  let other: Sandbox | undefined;
  try {
    const rec = await readRecord(join(stateRoot, id, "state.json"));
    const pidsA = [rec.vmPid, rec.virtiofsdPid].filter((p): p is number => p !== undefined);
    const cA = await sb.createContainer({ id: "long", spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
    await cA.start();
    // AB_ASLR=1: a second sandbox whose guest has address space randomization off (a TCG experiment).
    let sb2: { c: typeof cA; pids: number[] } | undefined;
    // AB_ASSETS=DIR: a second sandbox booted from other guest assets (an agent or image change).
    if (process.env.AB_ASLR === "1" || process.env.AB_ASSETS !== undefined || abTbMiB !== undefined) {
      const b =
        process.env.AB_ASSETS !== undefined
          ? { assets: await loadGuestAssets(process.env.AB_ASSETS), ...hv }
          : abTbMiB !== undefined
            ? { hypervisor: await QemuHypervisor.open({ tcgTbSizeMiB: abTbMiB }) }
            : { sysctls: { "kernel.randomize_va_space": "0" }, ...hv };
      other = await Sandbox.create({ id: `${id}-b`, bootTimeoutMs: 180_000, ...b });
      const rec2 = await readRecord(join(stateRoot, `${id}-b`, "state.json"));
      const c2 = await other.createContainer({ id: "long", spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
      await c2.start();
      sb2 = { c: c2, pids: [rec2.vmPid, rec2.virtiofsdPid].filter((p): p is number => p !== undefined) };
    }
    const agent = (sb as unknown as { agent: { version(): Promise<unknown> } }).agent;
    let k = 0;
    const execOnce = async (args: string[], prefix = "e", in2?: { c: typeof cA; pids: number[] }): Promise<Sample & { status: number }> => {
      const pids = in2?.pids ?? pidsA;
      const c = in2?.c ?? cA;
      const c0 = await cpuMs(pids);
      const t0 = performance.now();
      const p = await c.exec(`${prefix}${k++}`, { args, cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
      const t1 = performance.now();
      const [, , st] = await Promise.all([p.pumpOutput("stdout", new Collect()), p.pumpOutput("stderr", new Collect()), p.wait()]);
      const t2 = performance.now();
      return { wall: t2 - t0, rpc: t1 - t0, cpu: (await cpuMs(pids)) - c0, status: st.status };
    };
    // busybox on the container's /dev (a tmpfs in the guest): exec'd without virtio-fs round trips.
    // Copied in each sandbox.
    if ((await execOnce(["sh", "-c", "cp /bin/busybox /dev/bb"])).status !== 0) throw new Error("cannot copy busybox to /dev");
    if (sb2 !== undefined && (await execOnce(["sh", "-c", "cp /bin/busybox /dev/bb"], "e", sb2)).status !== 0) throw new Error("cannot copy busybox to /dev");
    // TCG's own counters (HMP `info jit`): translation-cache flushes and blocks translated.
    type Qmp = { execute(c: "human-monitor-command", a: { "command-line": string }): Promise<string> };
    const qmpOf = (s: Sandbox) => (s.vm as unknown as { qmp?: Qmp }).qmp;
    const jit = async (qmp = qmpOf(sb)): Promise<{ flushes: number; tbs: number; text: string }> => {
      const text = (await qmp?.execute("human-monitor-command", { "command-line": "info jit" }).catch(() => "")) ?? "";
      const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
      return { flushes: num(/TB flush count\s+(\d+)/), tbs: num(/gen code size\s+(\d+)/), text };
    };
    const j0 = await jit();
    const variants: Record<string, () => Promise<Sample>> = {
      true: () => execOnce(["true"]),
      true_tmpfs: () => execOnce(["/dev/bb", "true"]),
      ...(sb2 !== undefined ? { [process.env.AB_ASSETS !== undefined ? "true_b_assets" : abTbMiB !== undefined ? `true_b_tb${abTbMiB}` : "true_norandmaps"]: () => execOnce(["true"], "e", sb2) } : {}),
      // The same in the second sandbox: a difference between the two sandboxes' true_tmpfs is not the change's.
      ...(sb2 !== undefined ? { true_tmpfs_b: () => execOnce(["/dev/bb", "true"], "e", sb2) } : {}),
      rpc: async () => {
        const c0 = await cpuMs(pidsA);
        const t0 = performance.now();
        await agent.version();
        const wall = performance.now() - t0;
        return { wall, rpc: wall, cpu: (await cpuMs(pidsA)) - c0 };
      },
    };
    const samples: Record<string, Sample[]> = {};
    const codeKiB: Record<string, number[]> = {};
    for (let i = 0; i < N; i++) {
      for (const [name, fn] of Object.entries(variants)) {
        const qmp = name.startsWith("true_b") || name.endsWith("_b") || name === "true_norandmaps" ? qmpOf(other!) : qmpOf(sb);
        const a0 = await jit(qmp);
        (samples[name] ??= []).push(await fn());
        const a1 = await jit(qmp);
        // Host code generated for the guest during the exec (only when no flush came between).
        if (a1.flushes === a0.flushes) (codeKiB[name] ??= []).push((a1.tbs - a0.tbs) / 1024);
      }
    }
    for (const [name, xs] of Object.entries(codeKiB)) {
      console.log(`${name.padEnd(16)} TCG code generated per exec: median ${median(xs).toFixed(0)} KiB (${xs.map((x) => x.toFixed(0)).join(" ")})`);
      figures[`${name}_tcg_code_kib`] = Math.round(median(xs));
    }
    const j1 = await jit();
    const perExec = N * (Object.keys(variants).length - 1);
    console.log(`TCG: ${j1.flushes - j0.flushes} translation-cache flushes over ${perExec} execs (${(j1.flushes - j0.flushes) / perExec} per exec)`);
    if (process.env.SHOW_JIT === "1") console.log(j1.text);
    figures.tb_flushes_per_exec = (j1.flushes - j0.flushes) / perExec;
    for (const [name, xs] of Object.entries(samples)) {
      const wall = median(xs.map((x) => x.wall));
      const rpc = median(xs.map((x) => x.rpc));
      const cpu = median(xs.map((x) => x.cpu));
      console.log(`${name.padEnd(16)} wall ${wall.toFixed(0).padStart(6)} ms (until pid ${rpc.toFixed(0).padStart(5)} ms)  QEMU+virtiofsd CPU ${cpu.toFixed(0).padStart(5)} ms`);
      Object.assign(figures, { [`${name}_wall_ms`]: Math.round(wall), [`${name}_cpu_ms`]: Math.round(cpu), [`${name}_until_pid_ms`]: Math.round(rpc) });
    }
  } finally {
    await other?.destroy();
    await sb.destroy();
    delete process.env.KATA_TS_STATE_DIR;
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`(medians of ${N}, interleaved; load average ${loadavg()[0]!.toFixed(1)})`);
  if (argv.json) console.log(JSON.stringify({ figures: { ...figures, runs: N, load_average: Math.round(loadavg()[0]! * 10) / 10 } }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
