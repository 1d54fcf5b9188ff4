// What giving an idle VM's TCG translation cache back saves and costs (issues 12/14;
// docs/density.md "Giving an idle VM's translation cache back"): --vms VMs booted with split-wx as
// the sandbox layer boots a pod's, a `sleep` container in each and a few warm execs; then per round
// and VM: QEMU's PSS (and its code buffer's) before a trim, the trim (its wall time), the PSS after
// a short settle, the QEMU CPU of the first exec after the trim and of the next. Prints figures,
// asserts nothing. Usage: see USAGE below (`node dist/bench/tcg-trim.js --help`).
import { loadavg } from "node:os";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { runSpec } from "../src/sandbox/default-spec.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { QemuHypervisor } from "../src/hypervisor/qemu/index.js";
import { canTrimTcgCache } from "../src/hypervisor/types.js";
import { openSandboxScratch } from "./lib/sandbox-scratch.js";
import { processThreadsCpuMs } from "../src/util/proc-sched.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";
import { median } from "./lib/figures.js";
import { smapsRollup, tcgJitMemfd } from "./lib/vmm-memory.js";

const USAGE = `usage: node dist/bench/tcg-trim.js [--vms N] [--rounds N] [--settle-s S] [--json]   (as root)

Boots --vms VMs with TCG's code buffer in a memfd (split-wx), a sleep container in each, 2 execs
of \`true\` to warm up and 3 timed; then --rounds times per VM: QEMU PSS before a trim, the trim,
QEMU PSS --settle-s later, QEMU CPU of the first exec after the trim and of the second.

  --vms N         VMs running at once (default 2)
  --rounds N      trims per VM (default 3)
  --settle-s S    seconds between a trim and the PSS reading after it (default 2)
  --json          end with one line {"figures": {...}}
  --help          this text`;

const argv = parseBenchArgs(USAGE, {
  options: {
    vms: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    "settle-s": { type: "string", default: "2" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
const opts = checkOptions(USAGE, () => ({
  vms: intOption("vms", argv.vms, 1),
  rounds: intOption("rounds", argv.rounds, 1),
  settleS: intOption("settle-s", argv["settle-s"], 0),
}));

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
const mib = (kib: number): number => kib / 1024;

async function main(): Promise<void> {
  const scratch = await openSandboxScratch("trim");
  const { rootfs, sandboxes } = scratch;
  try {
    const hypervisor = await QemuHypervisor.open({ tcgSplitWx: true });
    const vms: { sb: Sandbox; vm: NonNullable<Sandbox["vm"]> & { trimTcgCache: (timeoutMs: number) => Promise<unknown> }; pid: number; c: Awaited<ReturnType<Sandbox["createContainer"]>> }[] = [];
    for (let i = 0; i < opts.vms; i++) {
      const sb = await Sandbox.create({ id: `bench-trim-${process.pid}-${i}`, accel: "tcg", memoryMiB: 512, bootTimeoutMs: 300_000, hypervisor });
      sandboxes.push(sb);
      const vm = sb.vm;
      const pid = vm?.pid;
      if (vm === undefined || pid === undefined || !canTrimTcgCache(vm)) throw new Error(`sandbox ${sb.id}: no trimmable QEMU`);
      const c = await sb.createContainer({ id: "long", spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
      await c.start();
      vms.push({ sb, vm, pid, c });
    }
    let k = 0;
    const exec = async (v: (typeof vms)[number]): Promise<number> => {
      const c0 = await processThreadsCpuMs(v.pid);
      const p = await v.c.exec(`e${k++}`, { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
      const [, , st] = await Promise.all([p.pumpOutput("stdout", sink()), p.pumpOutput("stderr", sink()), p.wait()]);
      if (st.status !== 0) throw new Error(`exec of true exited ${st.status}`);
      return (await processThreadsCpuMs(v.pid)) - c0;
    };
    // The first execs after a container start translate their path; the next ones are warm.
    for (let r = 0; r < 2; r++) for (const v of vms) await exec(v);
    const warm: number[] = [];
    for (let r = 0; r < 3; r++) for (const v of vms) warm.push(await exec(v));
    const series: Record<string, number[]> = { pss_before_mib: [], pss_after_mib: [], cache_before_mib: [], cache_after_mib: [], trim_wall_ms: [], first_exec_cpu_ms: [], second_exec_cpu_ms: [] };
    const push = (key: string, x: number): void => void series[key]?.push(x);
    for (let r = 0; r < opts.rounds; r++) {
      for (const v of vms) {
        push("pss_before_mib", mib((await smapsRollup(v.pid)).pssKiB));
        push("cache_before_mib", mib((await tcgJitMemfd(v.pid))?.pssKiB ?? 0));
        const t0 = performance.now();
        await v.vm.trimTcgCache(10_000);
        push("trim_wall_ms", performance.now() - t0);
        await sleep(opts.settleS * 1000);
        push("pss_after_mib", mib((await smapsRollup(v.pid)).pssKiB));
        push("cache_after_mib", mib((await tcgJitMemfd(v.pid))?.pssKiB ?? 0));
        push("first_exec_cpu_ms", await exec(v));
        push("second_exec_cpu_ms", await exec(v));
      }
    }
    const figures: Record<string, number> = { warm_exec_cpu_ms: Math.round(median(warm) * 10) / 10 };
    console.log(`warm exec CPU ms: ${warm.map((x) => x.toFixed(0)).join(" ")}`);
    for (const [key, xs] of Object.entries(series)) {
      figures[key] = Math.round(median(xs) * 10) / 10;
      console.log(`${key}: ${xs.map((x) => x.toFixed(key.endsWith("_mib") ? 1 : 0)).join(" ")}`);
    }
    const load = loadavg()[0] ?? 0;
    console.log(`(${vms.length} VMs, ${opts.rounds} trims each, PSS ${opts.settleS} s after each trim; load average at the end ${load.toFixed(1)})`);
    if (argv.json) console.log(JSON.stringify({ figures: { ...figures, vms: vms.length, load_average: Math.round(load * 10) / 10 } }));
  } finally {
    await scratch.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
