// kata-ts run against runc on the same busybox rootfs in the same process: wall time of
// `kata-ts run -- true`, container start in a running sandbox, exec round-trip into a running
// container, and 100 MiB of stdout. Prints medians and ratios; asserts nothing. The exec here is the
// sandbox layer's (what the shim does for it: ExecProcess, then Wait and the output pumps) against
// `runc exec`; the round trip a Kubernetes user sees, CRI ExecSync through containerd and the shim,
// is bench/pod-start.ts's kata_exec_ms; bench/exec-phases.ts splits an exec into its costs.
// Usage: see USAGE below (`node dist/bench/run.js --help`); as root.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { runSpec, type RunSpecOptions } from "../src/sandbox/default-spec.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { makeBusyboxRootfs } from "../test/integration/agent-container-fixture.js";
import { checkOptions, intEnv, intOption, parseBenchArgs } from "./lib/args.js";

const USAGE = `usage: node dist/bench/run.js [--runs N] [--json]     (as root; environment: see below)

kata-ts against runc on the same busybox rootfs: \`kata-ts run -- true\` against \`runc run\`,
container start in a running sandbox, exec round trip into a running container, 100 MiB of
stdout. Prints medians and kata-ts/runc ratios.

  --runs N      runs of each measurement; exec gets 2N (default 3, or BENCH_N)
  --json        end with one line {"figures": {...}}: kata/runc medians (ms, MiB/s) and ratios
  --help        this text

Environment:
  BENCH_N=N     the default of --runs (BENCH_N=5 is the same as --runs 5)`;

const argv = parseBenchArgs(USAGE, { options: { runs: { type: "string" }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const N = checkOptions(USAGE, () => (argv.runs !== undefined ? intOption("runs", argv.runs, 1) : (intEnv("BENCH_N", 1) ?? 3)));
const CLI = fileURLToPath(new URL("../../bin/kata-ts.js", import.meta.url));
const MIB100 = 100 * 1024 * 1024;
// dd with 1 MiB blocks rather than head: fewer syscalls, which under TCG cost far more than on the host.
const BIG = ["sh", "-c", "dd if=/dev/zero bs=1048576 count=100 2>/dev/null"];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs a command; resolves with wall ms, exit code and how many stdout bytes it printed. */
function timed(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, detached = false): Promise<{ ms: number; code: number | null; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // A detached container keeps its stdio: give it none, or "close" would wait for it forever.
    const child = spawn(file, args, { env, stdio: ["ignore", detached ? "ignore" : "pipe", detached ? "ignore" : "inherit"] });
    let bytes = 0;
    child.stdout?.on("data", (b: Buffer) => (bytes += b.length));
    child.once("error", reject);
    child.once("close", (code) => resolve({ ms: performance.now() - t0, code, bytes }));
  });
}

class Counter extends Writable {
  bytes = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.bytes += chunk.length;
    cb();
  }
}

async function runcBundle(dir: string, rootfs: string, o: RunSpecOptions): Promise<string> {
  await mkdir(dir, { recursive: true });
  const spec = runSpec(o);
  spec.root = { path: rootfs, readonly: false };
  await writeFile(join(dir, "config.json"), JSON.stringify(spec));
  return dir;
}

const figures: Record<string, number> = {};

/** Prints one comparison and records it as <key>_kata_<unit>, <key>_runc_<unit>, <key>_ratio. */
function row(what: string, key: string, kata: number[], runc: number[], unit: "ms" | "MiB/s"): void {
  const k = median(kata);
  const r = median(runc);
  const u = unit === "ms" ? "ms" : "mib_s";
  figures[`kata_${key}_${u}`] = Math.round(k * 10) / 10;
  figures[`runc_${key}_${u}`] = Math.round(r * 10) / 10;
  figures[`${key}_ratio`] = Math.round((k / r) * 100) / 100;
  console.log(`${what.padEnd(34)} kata-ts ${k.toFixed(1).padStart(9)} ${unit}   runc ${r.toFixed(1).padStart(9)} ${unit}   ratio ${(k / r).toPrecision(2)}x`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-bench-run-"));
  const stateRoot = join(dir, "state");
  process.env.KATA_TS_STATE_DIR = stateRoot;
  const rootfs = join(dir, "rootfs");
  await makeBusyboxRootfs(rootfs);
  const env = { ...process.env, KATA_TS_STATE_DIR: stateRoot };
  try {
    // 1. One container, start to finish.
    const kataRun: number[] = [];
    const runcRun: number[] = [];
    const trueBundle = await runcBundle(join(dir, "b-true"), rootfs, { args: ["true"] });
    for (let i = 0; i < N; i++) {
      kataRun.push((await timed(process.execPath, [CLI, "run", "--rootfs", rootfs, "--", "true"], env)).ms);
      runcRun.push((await timed("runc", ["run", "--bundle", trueBundle, `bench-true-${process.pid}-${i}`])).ms);
    }
    row("run -- true (wall)", "run", kataRun, runcRun, "ms");

    // 2. exec round-trip and 3. 100 MiB stdout, in one long-lived sandbox.
    const sb = await Sandbox.create({ id: `bench-${process.pid}` });
    const runcId = `bench-long-${process.pid}`;
    try {
      // Container start in a running sandbox (CreateContainer + StartContainer; StartContainer
      // alone is crun run in the guest) against `runc run --detach`.
      const kataStart: number[] = [];
      const kataStartOnly: number[] = [];
      const runcStart: number[] = [];
      const longBundle = await runcBundle(join(dir, "b-long"), rootfs, { args: ["sleep", "100000"] });
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        const c = await sb.createContainer({ id: `start${i}`, spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
        const t1 = performance.now();
        await c.start();
        kataStart.push(performance.now() - t0);
        kataStartOnly.push(performance.now() - t1);
        await c.delete();
        const id = `bench-start-${process.pid}-${i}`;
        const r = await timed("runc", ["run", "--detach", "--bundle", longBundle, id], process.env, true);
        if (r.code !== 0) throw new Error("runc run --detach failed");
        runcStart.push(r.ms);
        await timed("runc", ["delete", "--force", id]);
      }
      row("container create+start", "start", kataStart, runcStart, "ms");
      figures.kata_start_container_rpc_ms = Math.round(median(kataStartOnly) * 10) / 10;
      console.log(`${"  of which StartContainer".padEnd(34)} kata-ts ${median(kataStartOnly).toFixed(1).padStart(9)} ms`);

      const long = await sb.createContainer({ id: "long", spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
      await long.start();
      const started = await timed("runc", ["run", "--detach", "--bundle", longBundle, runcId], process.env, true);
      if (started.code !== 0) throw new Error("runc run --detach failed");
      const kataExec: number[] = [];
      const runcExec: number[] = [];
      for (let i = 0; i < N * 2; i++) {
        const t0 = performance.now();
        const p = await long.exec(`e${i}`, { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
        await Promise.all([p.pumpOutput("stdout", new Counter()), p.pumpOutput("stderr", new Counter()), p.wait()]);
        kataExec.push(performance.now() - t0);
        runcExec.push((await timed("runc", ["exec", runcId, "true"])).ms);
      }
      row("exec true (round-trip)", "exec", kataExec, runcExec, "ms");

      const kataTp: number[] = [];
      const runcTp: number[] = [];
      const bigBundle = await runcBundle(join(dir, "b-big"), rootfs, { args: BIG });
      for (let i = 0; i < Math.max(1, Math.floor(N / 2)); i++) {
        const c = await sb.createContainer({ id: `big${i}`, spec: runSpec({ args: BIG }), rootfs });
        const p = await c.start();
        const out = new Counter();
        const t0 = performance.now();
        await Promise.all([p.pumpOutput("stdout", out), p.wait()]);
        const s = (performance.now() - t0) / 1000;
        await c.delete();
        if (out.bytes !== MIB100) throw new Error(`kata-ts stdout: ${out.bytes} bytes, expected ${MIB100}`);
        kataTp.push(100 / s);
        const r = await timed("runc", ["run", "--bundle", bigBundle, `bench-big-${process.pid}-${i}`]);
        if (r.bytes !== MIB100) throw new Error(`runc stdout: ${r.bytes} bytes`);
        runcTp.push(100 / (r.ms / 1000));
      }
      row("100 MiB stdout (throughput)", "stdout", kataTp, runcTp, "MiB/s");
    } finally {
      await timed("runc", ["delete", "--force", runcId]);
      await sb.destroy();
    }
  } finally {
    delete process.env.KATA_TS_STATE_DIR;
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`(medians of ${N} runs; exec of ${N * 2}; TCG guest on this host, load average ${loadavg()[0]!.toFixed(1)})`);
  if (argv.json) console.log(JSON.stringify({ figures: { ...figures, runs: N, load_average: Math.round(loadavg()[0]! * 10) / 10 } }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
