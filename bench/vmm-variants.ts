// A/B of QEMU settings and guest builds with several VMs running at once (issue 14): TCG cache size,
// QEMU's environment (malloc tunables), guest memory size, another guest assets build (e.g. other
// agent node flags). Sandboxes through the sandbox layer as bench/exec-phases.ts makes them, booted
// in turns (A1 B1 ... A2 B2 ...), a `sleep` container in each, then execs of `true` interleaved
// across all VMs; per VM: QEMU CPU time (schedstat) of the boot, StartContainer and each exec,
// TCG flushes over the execs (HMP `info jit`), then QEMU's PSS by kind of mapping once settled.
// Prints figures, asserts nothing. Usage: see USAGE below (`node dist/bench/vmm-variants.js --help`).
import { loadavg } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { runSpec } from "../src/sandbox/default-spec.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { readRecord } from "../src/sandbox/state-file.js";
import { loadGuestAssets } from "../src/guest/assets.js";
import { QemuHypervisor } from "../src/hypervisor/qemu/index.js";
import { openSandboxScratch } from "./lib/sandbox-scratch.js";
import { processThreadsCpuMs } from "../src/util/proc-sched.js";
import { checkOptions, intOption, parseBenchArgs, UsageError } from "./lib/args.js";
import { median } from "./lib/figures.js";
import { mappingResidentKiB, smapsBreakdown, smapsRollup } from "./lib/vmm-memory.js";
import { tcgJitState } from "./lib/tcg-jit.js";
import { parseVmVariant, withVariantEnv, type VmVariant } from "./lib/vmm-variant.js";

const USAGE = `usage: node dist/bench/vmm-variants.js --variant SPEC [--variant SPEC ...] [options]   (as root)

Boots --per VMs of every variant (in turns), all running at once, a sleep container in each; then
execs of \`true\` interleaved across the VMs. Per variant (medians over its VMs): QEMU CPU of boot,
StartContainer and an exec, TCG flushes per exec, QEMU PSS by mapping (guest RAM, TCG code, other
anonymous, files) once settled, idle QEMU CPU.

  --variant SPEC    NAME:KEY=VALUE,...  keys: tb=MiB (TCG cache), mem=MiB (guest memory), huge=1
                    (guest RAM in huge pages: [hypervisor.qemu] huge_guest_ram), splitwx=1
                    (TCG's code buffer in a memfd: -accel tcg,split-wx=on),
                    assets=DIR (guest assets from kata-ts build-assets --dir DIR),
                    env=NAME=VALUE (QEMU's environment; repeatable). "NAME:" alone: the defaults.
                    e.g. --variant base: --variant tb32:tb=32 --variant arena:env=MALLOC_ARENA_MAX=1
  --per N           VMs per variant (default 2)
  --execs N         exec rounds (default 10)
  --stdout-mib N    also 3 rounds of N MiB of stdout per VM (dd), QEMU CPU each (default 0: none)
  --settle-s S      seconds before memory is read (default 20)
  --idle-s S        seconds of idle QEMU CPU measured after settling (default 0: none)
  --json            end with one line {"figures": {"<variant>_<figure>": median, ...}}
  --help            this text`;

const argv = parseBenchArgs(USAGE, {
  options: {
    variant: { type: "string", multiple: true, default: [] },
    per: { type: "string", default: "2" },
    execs: { type: "string", default: "10" },
    "stdout-mib": { type: "string", default: "0" },
    "settle-s": { type: "string", default: "20" },
    "idle-s": { type: "string", default: "0" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
const opts = checkOptions(USAGE, () => {
  if (argv.variant.length === 0) throw new UsageError("give at least one --variant");
  const variants = argv.variant.map(parseVmVariant);
  const names = new Set(variants.map((v) => v.name));
  if (names.size !== variants.length) throw new UsageError("variant names must differ");
  return {
    variants,
    per: intOption("per", argv.per, 1),
    execs: intOption("execs", argv.execs, 1),
    stdoutMiB: intOption("stdout-mib", argv["stdout-mib"], 0),
    settleS: intOption("settle-s", argv["settle-s"], 0),
    idleS: intOption("idle-s", argv["idle-s"], 0),
  };
});

class Sink extends Writable {
  bytes = 0;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.bytes += chunk.length;
    cb();
  }
}

async function tbFlushes(sb: Sandbox): Promise<number> {
  return sb.vm === undefined ? Number.NaN : (await tcgJitState(sb.vm)).flushes;
}

type Container = Awaited<ReturnType<Sandbox["createContainer"]>>;
interface Vm { v: VmVariant; sb: Sandbox; qemu: number; c: Container; figures: Record<string, number>; execCpu: number[]; stdoutCpu: number[] }

async function runIn(vm: Vm, id: string, args: string[]): Promise<{ status: number; stdoutBytes: number }> {
  const p = await vm.c.exec(id, { args, cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
  const out = new Sink();
  const [, , st] = await Promise.all([p.pumpOutput("stdout", out), p.pumpOutput("stderr", new Sink()), p.wait()]);
  return { status: st.status, stdoutBytes: out.bytes };
}

async function main(): Promise<void> {
  const scratch = await openSandboxScratch("vmm");
  const { dir, rootfs, sandboxes } = scratch;
  const vms: Vm[] = [];
  try {
    for (let i = 0; i < opts.per; i++) {
      for (const v of opts.variants) {
        const id = `bench-vmm-${process.pid}-${v.name}-${i}`;
        const hypervisor = await QemuHypervisor.open({ tcgTbSizeMiB: v.tbSizeMiB, hugeGuestRam: v.hugeGuestRam, ...(v.tcgSplitWx === true ? { tcgSplitWx: true } : {}) });
        const assets = v.assetsDir === undefined ? {} : { assets: await loadGuestAssets(v.assetsDir) };
        const sb = await withVariantEnv(v, () => Sandbox.create({ id, memoryMiB: v.memoryMiB, bootTimeoutMs: 300_000, hypervisor, ...assets }));
        sandboxes.push(sb);
        const qemu = (await readRecord(join(dir, "state", id, "state.json"))).vmPid;
        if (qemu === undefined) throw new Error(`sandbox ${id} has no QEMU pid`);
        const bootCpu = await processThreadsCpuMs(qemu);
        const c = await sb.createContainer({ id: "long", spec: runSpec({ args: ["sleep", "100000"] }), rootfs });
        const s0 = await processThreadsCpuMs(qemu);
        await c.start();
        vms.push({ v, sb, qemu, c, figures: { boot_cpu_ms: bootCpu, start_container_cpu_ms: (await processThreadsCpuMs(qemu)) - s0 }, execCpu: [], stdoutCpu: [] });
      }
    }
    const flushes0 = await Promise.all(vms.map((vm) => tbFlushes(vm.sb)));
    let k = 0;
    for (let r = 0; r < opts.execs; r++) {
      for (const vm of vms) {
        const c0 = await processThreadsCpuMs(vm.qemu);
        const { status } = await runIn(vm, `e${k++}`, ["true"]);
        if (status !== 0) throw new Error(`exec of true in ${vm.sb.id} exited ${status}`);
        vm.execCpu.push((await processThreadsCpuMs(vm.qemu)) - c0);
      }
    }
    const flushes1 = await Promise.all(vms.map((vm) => tbFlushes(vm.sb)));
    for (let r = 0; r < 3 && opts.stdoutMiB > 0; r++) {
      for (const vm of vms) {
        const c0 = await processThreadsCpuMs(vm.qemu);
        const { stdoutBytes } = await runIn(vm, `s${k++}`, ["dd", "if=/dev/zero", "bs=1048576", `count=${opts.stdoutMiB}`]);
        if (stdoutBytes !== opts.stdoutMiB * 1048576) throw new Error(`${vm.sb.id}: ${stdoutBytes} bytes of stdout, expected ${opts.stdoutMiB} MiB`);
        vm.stdoutCpu.push((await processThreadsCpuMs(vm.qemu)) - c0);
      }
    }
    await sleep(opts.settleS * 1000);
    const loadAtMeasure = loadavg()[0]!;
    for (const [i, vm] of vms.entries()) {
      const b = await smapsBreakdown(vm.qemu, vm.v.memoryMiB * 1024, vm.v.tbSizeMiB * 1024);
      Object.assign(vm.figures, {
        exec_cpu_ms: median(vm.execCpu),
        tb_flushes_per_exec: (flushes1[i]! - flushes0[i]!) / opts.execs,
        qemu_pss_mib: (await smapsRollup(vm.qemu)).pssKiB / 1024,
        guest_ram_mib: b.guestRam / 1024,
        // Resident, not PSS: with huge pages virtiofsd maps whole 2 MiB pages too, which halves their PSS here.
        guest_ram_rss_mib: (await mappingResidentKiB(vm.qemu, vm.v.memoryMiB * 1024)) / 1024,
        tcg_code_mib: b.tcgCode / 1024,
        other_anon_mib: b.anon / 1024,
        files_mib: b.files / 1024,
        ...(vm.stdoutCpu.length > 0 ? { stdout_cpu_ms: median(vm.stdoutCpu) } : {}),
      });
    }
    if (opts.idleS > 0) {
      const idle0 = await Promise.all(vms.map((vm) => processThreadsCpuMs(vm.qemu)));
      await sleep(opts.idleS * 1000);
      for (const [i, vm] of vms.entries()) vm.figures.idle_millicores = ((await processThreadsCpuMs(vm.qemu)) - idle0[i]!) / opts.idleS;
    }
    const figures: Record<string, number> = {};
    for (const v of opts.variants) {
      const mine = vms.filter((vm) => vm.v === v);
      const line = Object.keys(mine[0]!.figures).map((key) => {
        const xs = mine.map((vm) => vm.figures[key]!);
        figures[`${v.name}_${key}`] = Math.round(median(xs) * 100) / 100;
        return `${key} ${xs.map((x) => x.toFixed(key.endsWith("_mib") || key.startsWith("tb_") ? 1 : 0)).join("/")}`;
      });
      console.log(`${v.name.padEnd(10)} ${line.join("  ")}`);
    }
    console.log(`(${opts.per} VMs per variant, ${vms.length} at once, ${opts.execs} execs each; load average at the memory reading ${loadAtMeasure.toFixed(1)})`);
    if (argv.json) console.log(JSON.stringify({ figures: { ...figures, vms: vms.length, load_average: Math.round(loadAtMeasure * 10) / 10 } }));
  } finally {
    await scratch.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
