// What compressing an idle pod's agent into the guest's zram swap saves and costs (issue 14;
// docs/density.md "Compressing the idle agent"). --vms VMs booted as the sandbox layer boots a
// pod's (split-wx, so they can be trimmed as tcg_idle_trim_s does), each with a container that
// only logs the guest's swap counters to its (virtio-fs) rootfs every 10 s with shell builtins, so
// reading them never goes through the agent. Even-numbered VMs are reclaimed, odd ones are the
// control; every VM is then trimmed (the order the idle trimmer uses), left idle, and exec'd.
// Per step and VM: guest RAM the host holds (the guest-RAM mapping's Rss), QEMU's PSS, QEMU's
// CPU; for the reclaimed VMs the agent's answer (its cgroup before/after, what zram holds and
// uses) and the pages swapped back in while idle. Prints figures, asserts nothing.
// Usage: see USAGE below (`node dist/bench/idle-reclaim.js --help`).
import { readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { runSpec } from "../src/sandbox/default-spec.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { QemuHypervisor } from "../src/hypervisor/qemu/index.js";
import { canTrimTcgCache } from "../src/hypervisor/types.js";
import { loadGuestAssets, type GuestAssets } from "../src/guest/assets.js";
import { assetsDir } from "../src/util/paths.js";
import { AGENT_CGROUP_PARAM } from "../src/protocol/contract/guest.js";
import { openSandboxScratch } from "./lib/sandbox-scratch.js";
import { processThreadsCpuMs } from "../src/util/proc-sched.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";
import { median } from "./lib/figures.js";
import { mappingResidentKiB, smapsRollup } from "./lib/vmm-memory.js";

const USAGE = `usage: node dist/bench/idle-reclaim.js [--vms N] [--settle-s S] [--idle-s S] [--params P] [--json]   (as root)

Boots N VMs (guest assets from KATA_TS_ASSETS_DIR: a kernel with zram) with a logging container
each and 3 warm execs; once settled, the even-numbered VMs' agents reclaim their memory
(ReclaimIdleMemory), the odd ones are the control; every VM's TCG cache is then trimmed. Prints
guest RAM on the host and QEMU PSS before, S s after, after --idle-s more and after two execs; the
reclaim's QEMU CPU (the first, which sets zram up, and a second one at the end); the execs' QEMU
CPU against warm ones; pages swapped in while idle.

  --vms N        VMs at once (default 2: one reclaimed, one control)
  --settle-s S   seconds after the reclaim and trim before reading (default 20: free page reporting)
  --idle-s S     then idle this long before the execs (default 60)
  --params P     extra guest kernel parameters, space-separated (e.g. "kata_ts.page_reporting_order=0
                 kata_ts.zram_algorithm=lz4")
  --json         end with one line {"figures": {...}}
  --help         this text`;

const argv = parseBenchArgs(USAGE, {
  options: {
    vms: { type: "string", default: "2" },
    "settle-s": { type: "string", default: "20" },
    "idle-s": { type: "string", default: "60" },
    params: { type: "string", default: "" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
const opts = checkOptions(USAGE, () => ({
  vms: intOption("vms", argv.vms, 1),
  settleS: intOption("settle-s", argv["settle-s"], 1),
  idleS: intOption("idle-s", argv["idle-s"], 0),
}));

const MEMORY_MIB = 512;
const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
const mib = (bytes: number): number => Math.round((bytes / 1048576) * 100) / 100;

/** Every 10 s: "<uptime> pswpin pswpout <zram mm_stat>", builtins only (one fork: sleep). */
const LOGGER = `while :; do
  read -r up _ </proc/uptime; si=0; so=0
  while read -r k v; do case $k in pswpin) si=$v ;; pswpout) so=$v ;; esac; done </proc/vmstat
  mm=; [ -e /sys/block/zram0/mm_stat ] && read -r mm </sys/block/zram0/mm_stat
  echo "$up $si $so $mm"
  sleep 10
done >>/swap-$VM.log`;

type Container = Awaited<ReturnType<Sandbox["createContainer"]>>;
interface BenchVm { i: number; sb: Sandbox; qemu: number; c: Container; reclaimed: boolean; trim: (timeoutMs: number) => Promise<unknown> }

/** The last line of a VM's swap log: pswpin, pswpout (pages), zram orig/used bytes. */
async function swapCounters(rootfs: string, vm: BenchVm): Promise<{ pswpin: number; pswpout: number; origBytes: number; usedBytes: number }> {
  const lines = (await readFile(join(rootfs, `swap-${vm.i}.log`), "utf8").catch(() => "")).trim().split("\n");
  const f = (lines.at(-1) ?? "").split(/\s+/).map(Number);
  return { pswpin: f[1] ?? NaN, pswpout: f[2] ?? NaN, origBytes: f[3] ?? 0, usedBytes: f[5] ?? 0 };
}

async function main(): Promise<void> {
  const scratch = await openSandboxScratch("idle-reclaim");
  const { rootfs, sandboxes } = scratch;
  const series: Record<string, number[]> = {};
  const push = (key: string, x: number): void => void (series[key] ??= []).push(x);
  try {
    const base = await loadGuestAssets(assetsDir());
    // AGENT_CGROUP_PARAM: what podAssets adds for [hypervisor.qemu] tcg_idle_reclaim_agent.
    const assets: GuestAssets = { ...base, kernelCmdline: [...base.kernelCmdline, AGENT_CGROUP_PARAM, ...argv.params.split(/\s+/).filter((p) => p !== "")] };
    const hypervisor = await QemuHypervisor.open({ tcgSplitWx: true });
    const vms: BenchVm[] = [];
    for (let i = 0; i < opts.vms; i++) {
      const sb = await Sandbox.create({ id: `bench-idle-reclaim-${process.pid}-${i}`, accel: "tcg", memoryMiB: MEMORY_MIB, bootTimeoutMs: 300_000, hypervisor, assets });
      sandboxes.push(sb);
      const vm = sb.vm;
      if (vm === undefined || vm.pid === undefined || !canTrimTcgCache(vm)) throw new Error(`sandbox ${sb.id}: no trimmable QEMU`);
      const c = await sb.createContainer({ id: "long", spec: runSpec({ args: ["sh", "-c", LOGGER], env: [`VM=${i}`] }), rootfs });
      await c.start();
      vms.push({ i, sb, qemu: vm.pid, c, reclaimed: i % 2 === 0, trim: (t) => vm.trimTcgCache(t) });
    }
    let k = 0;
    const exec = async (v: BenchVm): Promise<{ cpuMs: number; wallMs: number }> => {
      const c0 = await processThreadsCpuMs(v.qemu);
      const t0 = performance.now();
      const p = await v.c.exec(`e${k++}`, { args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
      const [, , st] = await Promise.all([p.pumpOutput("stdout", sink()), p.pumpOutput("stderr", sink()), p.wait()]);
      if (st.status !== 0) throw new Error(`exec of true exited ${st.status}`);
      return { cpuMs: (await processThreadsCpuMs(v.qemu)) - c0, wallMs: performance.now() - t0 };
    };
    const tag = (v: BenchVm): string => (v.reclaimed ? "reclaimed" : "control");
    const reading = async (label: string): Promise<void> => {
      for (const v of vms) {
        const ram = (await mappingResidentKiB(v.qemu, MEMORY_MIB * 1024)) / 1024;
        const pss = (await smapsRollup(v.qemu)).pssKiB / 1024;
        push(`${tag(v)}_${label}_guest_ram_mib`, ram);
        push(`${tag(v)}_${label}_qemu_pss_mib`, pss);
        console.log(`${v.sb.id} (${tag(v)}) ${label}: guest RAM on host ${ram.toFixed(1)} MiB, QEMU PSS ${pss.toFixed(1)} MiB`);
      }
    };
    for (let r = 0; r < 2; r++) for (const v of vms) await exec(v);
    for (let r = 0; r < 3; r++) for (const v of vms) push(`${tag(v)}_warm_exec_cpu_ms`, (await exec(v)).cpuMs);
    await sleep(opts.settleS * 1000);
    await reading("before");
    for (const v of vms) {
      if (v.reclaimed) {
        const c0 = await processThreadsCpuMs(v.qemu);
        const t0 = performance.now();
        const r = await v.sb.agent.reclaimIdleMemory(60_000);
        push("reclaim_wall_ms", performance.now() - t0);
        push("reclaim_cpu_ms", (await processThreadsCpuMs(v.qemu)) - c0);
        push("agent_before_mib", mib(r.agentBytesBefore));
        push("agent_after_mib", mib(r.agentBytesAfter));
        push("zram_orig_mib", mib(r.swappedBytes));
        push("zram_used_mib", mib(r.storedBytes));
        console.log(`${v.sb.id} reclaim: agent cgroup ${mib(r.agentBytesBefore)} -> ${mib(r.agentBytesAfter)} MiB; zram holds ${mib(r.swappedBytes)} MiB in ${mib(r.storedBytes)} MiB`);
      }
      await v.trim(10_000);
    }
    await sleep(opts.settleS * 1000);
    await reading("after");
    const swapAt = new Map<number, Awaited<ReturnType<typeof swapCounters>>>();
    for (const v of vms) swapAt.set(v.i, await swapCounters(rootfs, v));
    if (opts.idleS > 0) {
      await sleep(opts.idleS * 1000);
      await reading("idle");
      for (const v of vms.filter((x) => x.reclaimed)) {
        const a = swapAt.get(v.i)!;
        const b = await swapCounters(rootfs, v);
        push("idle_pswpin_kib", (b.pswpin - a.pswpin) * 4);
        push("idle_zram_orig_mib", mib(b.origBytes));
        push("idle_zram_used_mib", mib(b.usedBytes));
        console.log(`${v.sb.id} idle ${opts.idleS} s: ${b.pswpin - a.pswpin} pages swapped in; zram holds ${mib(b.origBytes)} MiB in ${mib(b.usedBytes)} MiB`);
      }
    }
    for (const v of vms) {
      const first = await exec(v);
      const second = await exec(v);
      push(`${tag(v)}_first_exec_cpu_ms`, first.cpuMs);
      push(`${tag(v)}_first_exec_wall_ms`, first.wallMs);
      push(`${tag(v)}_second_exec_cpu_ms`, second.cpuMs);
    }
    await reading("execs");
    await sleep(11_000); // one more line of the swap logs
    for (const v of vms.filter((x) => x.reclaimed)) {
      const a = swapAt.get(v.i)!;
      const b = await swapCounters(rootfs, v);
      push("total_pswpin_kib", (b.pswpin - a.pswpin) * 4);
      // A second reclaim: swap is on already, so this is what each later idle window costs.
      const c0 = await processThreadsCpuMs(v.qemu);
      const r = await v.sb.agent.reclaimIdleMemory(60_000);
      push("second_reclaim_cpu_ms", (await processThreadsCpuMs(v.qemu)) - c0);
      push("second_reclaim_agent_after_mib", mib(r.agentBytesAfter));
      push("second_reclaim_zram_used_mib", mib(r.storedBytes));
    }
  } finally {
    await scratch.close();
  }
  const figures: Record<string, number> = {};
  for (const [key, xs] of Object.entries(series)) {
    figures[key] = Math.round(median(xs) * 100) / 100;
    console.log(`${key.padEnd(40)} ${xs.map((x) => x.toFixed(key.endsWith("_ms") ? 0 : 2)).join(" ")}`);
  }
  const load = loadavg()[0] ?? 0;
  console.log(`(${opts.vms} VMs, load average at the end ${load.toFixed(1)})`);
  if (argv.json) console.log(JSON.stringify({ figures: { ...figures, vms: opts.vms, load_average: Math.round(load * 10) / 10 } }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
