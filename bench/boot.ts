// Boot benchmark: prints figures, asserts nothing. For each variant, boots the real guest N times
// and reports boot-to-agent-ready wall time (QEMU spawn -> Health.Check answered), the guest's
// uptime when its agent answered, the VMM's memory after boot (RSS/PSS from smaps_rollup; guest
// RAM touched = resident pages of the guest-RAM mapping), the same once free page reporting had
// time to hand freed pages back, and the *floor*: the same kernel and image booting busybox
// (static) as PID 1 with the same console parameters (quiet), which powers off at once — the
// kernel's own cost, beside which the agent's share is visible. Variants take turns round by
// round, so a change in host load hits all alike.
// Usage: see USAGE below (`node dist/bench/boot.js --help`).
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadGuestAssets, type GuestAssets } from "../src/guest/assets.js";
import { bootVm } from "../src/sandbox/agent-boot.js";
import { QemuHypervisor, type QemuHypervisorOptions } from "../src/hypervisor/qemu/index.js";
import { canTrimTcgCache, type VmConfig } from "../src/hypervisor/types.js";
import { defaultTcgIdleTrimS } from "../src/config/defaults.js";
import { busyboxPid1Cmdline } from "../test/integration/vm-support.js";
import { exitWithUsage, intOption, parseBenchArgs, UsageError } from "./lib/args.js";
import { describeSpread, figuresLine, median } from "./lib/figures.js";
import { mappingResidentKiB, smapsBreakdown, smapsRollup, tcgJitMemfd, type SmapsBreakdown } from "./lib/vmm-memory.js";
import { erofsExtents, imageResidency, type ImageExtent } from "./lib/image-residency.js";
import { tcgJitState, type TcgJitState } from "./lib/tcg-jit.js";
import { defaultTcgTbSizeMiB } from "../src/hypervisor/qemu/index.js";
import { processCpuSeconds } from "../src/util/proc-sched.js";
import { withPodShare, type PodShare } from "./lib/pod-share.js";
import { withEnv } from "./lib/vmm-variant.js";

/**
 * Every variant's QEMU as a pod's VM runs by default: with split-wx when idle VMs give their TCG
 * cache back ([hypervisor.qemu] tcg_idle_trim_s > 0), which makes the code buffer a memfd.
 */
const podDefaults: QemuHypervisorOptions = { tcgSplitWx: defaultTcgIdleTrimS > 0 };

const tunings: Record<string, QemuHypervisorOptions> = {
  default: {},
  /** The code buffer as anonymous memory (transparent huge pages), as before idle trimming. */
  "no-split-wx": { tcgSplitWx: false },
  /** The agent's snapshot is built under -cpu max and rejected here: this boots the agent script. */
  "cpu-qemu64": { cpuModel: "qemu64" },
  /** TCG's model before 2026-12-01: max with ERMS (the default leaves ERMS out: args/cpu.ts). */
  "cpu-max-erms": { cpuModel: "max" },
  "tcg-single": { tcgThread: "single" },
  "tb-8": { tcgTbSizeMiB: 8 },
  "tb-16": { tcgTbSizeMiB: 16 },
  "tb-32": { tcgTbSizeMiB: 32 },
  "tb-64": { tcgTbSizeMiB: 64 },
  "tb-128": { tcgTbSizeMiB: 128 },
  /** QEMU 7.2's own default. */
  "tb-1024": { tcgTbSizeMiB: 1024 },
  "no-seccomp": { seccomp: false },
  "no-balloon": { freePageReporting: false },
  /** Guest RAM as an unlinked file on a huge-page tmpfs (2 MiB pages) instead of a memfd. */
  "huge-ram": { hugeGuestRam: true },
  "memfd-ram": { hugeGuestRam: false },
  /** QEMU maps the shared kernel file and keeps it resident (before the private copy it releases). */
  "keep-kernel": { releaseKernel: false },
  /** Machine and image device ([hypervisor.qemu] machine, image_device), whatever the defaults are. */
  "microvm-disk": { machine: "microvm", imageDevice: "disk" },
  "q35-disk": { machine: "q35", imageDevice: "disk" },
  /** The image as virtio-pmem mounted with DAX: executed from the host's page cache. */
  "q35-pmem": { machine: "q35", imageDevice: "pmem" },
};

const USAGE = `usage: node dist/bench/boot.js [--boots N] [--variants V1,V2,...] [--memory MiB] [--no-share] [--settle-s N] [--json]

Boots the guest from the installed assets (KATA_TS_ASSETS_DIR moves them) under TCG, 1 vCPU, and
prints per variant: boot to agent ready (QEMU spawn -> Health.Check answered), the floor (the same
kernel booting busybox poweroff as PID 1), QEMU's CPU time for both (what host load stretches
least: compare variants by it on a busy host), guest uptime at ready, QEMU RSS/PSS and guest RAM
touched, and QEMU's PSS once the idle VM gave its TCG cache back (trimmed at once here; a pod's
VM is trimmed after [hypervisor.qemu] tcg_idle_trim_s idle: docs/density.md).
Variants take turns boot by boot, so a change in host load hits all alike.

  --boots N       boots per variant (default 7: the issue's medians of 7)
  --variants L    comma-separated; the first one's medians are the --json figures (default: default)
                  ${Object.keys(tunings).join(", ")},
                  cmdline:P1+P2 (kernel parameters added; -P removes one the assets give, e.g. cmdline:-quiet;
                  cmdline:acpi=force keeps ACPI where the VMM would boot the guest without it),
                  traits:none (the VMM knows nothing about the kernel, as for one it did not build: no
                  preset APIC timer period, ACPI on),
                  env:K=V+K2=V2 (QEMU's environment, e.g. env:G_SLICE= for GLib's slice allocator),
                  assets:DIR (the guest built by kata-ts build-assets --dir DIR, e.g. with a changed agent)
  --memory MiB    guest memory (default 512)
  --no-share      boot without a virtio-fs share: guest RAM is then anonymous memory (transparent
                  huge pages round what the guest touched up to 2 MiB), not the memfd every pod's VM
                  has (its guest has a share); default: a virtiofsd serving an empty directory
  --settle-s N    seconds free page reporting gets before "guest RAM later" and the PSS by mapping
                  are read (default 6; a low reporting order needs 20-40)
  --json          end with one line {"figures": {boot_to_agent_ms, floor_ms, guest_ram_touched_mib,
                  vmm_pss_mib, vmm_rss_mib, boot_to_agent_cpu_ms, floor_cpu_ms, and vmm_pss_idle_mib: QEMU's
                  PSS once the idle VM gave its TCG cache back, as a pod's does after tcg_idle_trim_s}}
                  (medians of the first variant)
  --help          this text`;

interface Variant {
  name: string;
  hv: QemuHypervisor;
  /** TCG code buffer size of this variant, to find its mapping in smaps. */
  tbSizeMiB: number;
  config(base: VmConfig): VmConfig;
  /** Set in this process's environment while QEMU is spawned (QEMU inherits it). */
  env?: Record<string, string>;
}

/**
 * How long free page reporting gets after the agent answered (--settle-s, default 6). The kernel
 * reports every 2 s, but each round only a slice of each free list (1/16 of it at most), so a
 * low reporting order needs 30 s or more to hand back everything that was dropped.
 */
let SETTLE_MS = 6000;
/**
 * Boot as a pod's VM boots: with a virtio-fs share, so guest RAM is the shared memfd virtiofsd maps
 * (4 KiB pages), not anonymous memory in transparent huge pages (up to ~4 MiB more "touched").
 */
let WITH_SHARE = true;

async function variant(name: string): Promise<Variant> {
  if (name.startsWith("cmdline:")) {
    // P adds a parameter, -P removes one the guest's assets give (e.g. cmdline:-acpi=off).
    const items = name.slice("cmdline:".length).split("+").filter((p) => p !== "");
    const extra = items.filter((p) => !p.startsWith("-"));
    const removed = new Set(items.filter((p) => p.startsWith("-")).map((p) => p.slice(1)));
    return {
      name, hv: await QemuHypervisor.open(podDefaults), tbSizeMiB: defaultTcgTbSizeMiB,
      config: (b) => ({ ...b, kernelCmdline: [...b.kernelCmdline.filter((p) => !removed.has(p)), ...extra] }),
    };
  }
  if (name === "traits:none") {
    return {
      name, hv: await QemuHypervisor.open(podDefaults), tbSizeMiB: defaultTcgTbSizeMiB,
      config: (b) => {
        const { kernelTraits: _, ...rest } = b;
        return rest;
      },
    };
  }
  if (name.startsWith("env:")) {
    const env: Record<string, string> = {};
    for (const item of name.slice("env:".length).split("+").filter((p) => p !== "")) {
      const eq = item.indexOf("=");
      if (eq <= 0) throw new UsageError(`variant ${JSON.stringify(name)}: env needs K=V items`);
      env[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return { name, hv: await QemuHypervisor.open(podDefaults), tbSizeMiB: defaultTcgTbSizeMiB, config: (b) => b, env };
  }
  if (name.startsWith("assets:")) {
    // Another build of the guest (kata-ts build-assets --dir DIR), e.g. with a changed agent.
    const other = await loadGuestAssets(name.slice("assets:".length));
    return {
      name, hv: await QemuHypervisor.open(podDefaults), tbSizeMiB: defaultTcgTbSizeMiB,
      config: (b) => {
        const { kernelTraits: _, ...rest } = b;
        return { ...rest, kernelPath: other.kernelPath, rootfsPath: other.rootfsPath, rootfsDevice: other.rootfsDevice, kernelCmdline: other.kernelCmdline, ...(other.kernelTraits === undefined ? {} : { kernelTraits: other.kernelTraits }) };
      },
    };
  }
  const opts = tunings[name];
  if (opts === undefined) throw new UsageError(`unknown variant ${JSON.stringify(name)}; known: ${Object.keys(tunings).join(", ")}, cmdline:P1+P2, env:K=V, traits:none, assets:DIR`);
  return { name, hv: await QemuHypervisor.open({ ...podDefaults, ...opts }), tbSizeMiB: opts.tcgTbSizeMiB ?? defaultTcgTbSizeMiB, config: (b) => b };
}

interface Sample {
  readyMs: number;
  floorMs: number;
  /** QEMU's CPU time (user + system) from spawn to the agent's answer: what load does not stretch. */
  readyCpuMs: number;
  /** QEMU's CPU time over the floor boot (last reading before it exited, 10 ms apart). */
  floorCpuMs: number;
  guestUptimeS: number;
  rssKiB: number;
  pssKiB: number;
  guestRamKiB: number;
  guestRamSettledKiB: number;
  rootfsMappedKiB: number;
  /** PSS by kind of mapping once settled. */
  breakdown: SmapsBreakdown;
  /** TCG's translation cache once settled (boot alone fills it: docs/density.md). */
  jit: TcgJitState;
  /** The root image's pages QEMU holds mapped once settled, by file (virtio-pmem/DAX only). */
  imageByFile: [string, number][];
  /**
   * QEMU's PSS once the idle VM gave its TCG cache back (the trim a pod's idle trimmer makes after
   * tcg_idle_trim_s, made at once here), 2 s after it; NaN when the VM cannot (no split-wx).
   */
  pssIdleKiB: number;
}

/** Extents of each root image's files, listed once per image (a walk of the image with dump.erofs). */
const extentsByImage = new Map<string, Promise<ImageExtent[]>>();

async function bootOnce(v: Variant, base: VmConfig, assets: GuestAssets): Promise<Omit<Sample, "floorMs" | "floorCpuMs">> {
  let config = v.config(base);
  let vfs: PodShare | undefined;
  if (WITH_SHARE) {
    vfs = await withPodShare(config);
    config = vfs.config;
  }
  const booted = await withEnv(v.env, () => bootVm(config, { deadlineMs: 180_000, hypervisor: v.hv })).catch(async (err: unknown) => {
    await vfs?.stop();
    throw err;
  });
  try {
    const pid = booted.vm.pid ?? 0;
    const readyCpuMs = ((await processCpuSeconds(pid)) ?? NaN) * 1000;
    const version = await booted.health.version({}, { timeoutMs: 10_000 });
    const mem = await smapsRollup(pid);
    const guestRamKiB = await mappingResidentKiB(pid, config.memoryMiB * 1024);
    const rootfsMappedKiB = (await mappingResidentKiB(pid, assets.manifest.artifacts.rootfs.size / 1024, config.rootfsPath)) || 0;
    await sleep(SETTLE_MS);
    const guestRamSettledKiB = await mappingResidentKiB(pid, config.memoryMiB * 1024);
    const breakdown = await smapsBreakdown(pid, config.memoryMiB * 1024, v.tbSizeMiB * 1024);
    const jit = await tcgJitState(booted.vm);
    let imageByFile: [string, number][] = [];
    if (rootfsMappedKiB > 0) {
      if (!extentsByImage.has(config.rootfsPath)) extentsByImage.set(config.rootfsPath, erofsExtents(config.rootfsPath).catch(() => []));
      imageByFile = (await imageResidency(pid, config.rootfsPath, await extentsByImage.get(config.rootfsPath)!)).byFile;
    }
    let pssIdleKiB = NaN;
    if (canTrimTcgCache(booted.vm) && (await tcgJitMemfd(pid)) !== undefined) {
      await booted.vm.trimTcgCache(10_000);
      await sleep(2000);
      pssIdleKiB = (await smapsRollup(pid)).pssKiB;
    }
    return { readyMs: booted.timings.agentReadyMs, readyCpuMs, guestUptimeS: version.uptimeSeconds, ...mem, guestRamKiB, guestRamSettledKiB, rootfsMappedKiB, breakdown, jit, imageByFile, pssIdleKiB };
  } finally {
    booted.agent.close();
    await booted.vm.stop();
    await vfs?.stop();
  }
}


/** The floor: QEMU spawn -> the guest powered off, with busybox poweroff as PID 1. */
async function floorOnce(v: Variant, base: VmConfig, assets: GuestAssets): Promise<{ ms: number; cpuMs: number }> {
  const withVariant = v.config(base);
  const busybox = busyboxPid1Cmdline({ ...assets, kernelCmdline: withVariant.kernelCmdline }, "poweroff", ["-f"]);
  // The agent boot's console settings too: busyboxPid1Cmdline drops `quiet` (tests read the kernel
  // log), and printing the log through the emulated UART cost the floor ~0.2 s of QEMU CPU and
  // ~0.6 s of wall time (8 rounds, loaded host): the kernel's share of an agent boot is without it.
  const consoleParams = withVariant.kernelCmdline.filter((p) => p === "quiet" || p.startsWith("loglevel="));
  const initArgs = busybox.indexOf("--");
  const pid1 = [...busybox.slice(0, initArgs), ...consoleParams, ...busybox.slice(initArgs)];
  const vm = await v.hv.create({ ...withVariant, id: `${base.id}-floor`, stateDir: `${base.stateDir}-floor`, kernelCmdline: pid1 });
  const started = performance.now();
  await withEnv(v.env, () => vm.start());
  // QEMU's CPU time cannot be read once it has exited and been reaped: sample it until then.
  let cpuS = 0;
  let exited = false;
  const sampling = (async () => {
    while (!exited) {
      cpuS = (await processCpuSeconds(vm.pid)) ?? cpuS;
      await sleep(10);
    }
  })();
  // unref'd: a pending 180 s deadline must not keep the bench alive after its last boot.
  const exit = await Promise.race([vm.wait(), sleep(180_000, undefined, { ref: false }).then(() => undefined)]);
  const ms = performance.now() - started;
  exited = true;
  await sampling;
  if (exit?.reason !== "poweroff") {
    await vm.stop();
    throw new Error(`floor boot of ${v.name} did not power off (${exit === undefined ? "timed out" : exit.reason})`);
  }
  return { ms, cpuMs: cpuS * 1000 };
}

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      boots: { type: "string", default: "7" },
      variants: { type: "string", default: "default" },
      memory: { type: "string", default: "512" },
      "settle-s": { type: "string", default: "6" },
      "no-share": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  let boots: number;
  let memoryMiB: number;
  try {
    boots = intOption("boots", values.boots, 1);
    memoryMiB = intOption("memory", values.memory, 128);
    SETTLE_MS = intOption("settle-s", values["settle-s"], 0) * 1000;
    WITH_SHARE = !values["no-share"];
  } catch (err) {
    if (err instanceof UsageError) exitWithUsage(USAGE, err.message);
    throw err;
  }
  const assets = await loadGuestAssets();
  const a = assets.manifest.artifacts;
  const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  console.log(`guest ${assets.kernelRelease} (${assets.manifest.kernel.source}): kernel ${mib(a.kernel.size)}, initrd ${a.initrd ? mib(a.initrd.size) : "none"}, rootfs (${assets.rootfsFormat} on ${assets.rootfsDevice}) ${mib(a.rootfs.size)}`);
  console.log(`kernel parameters: ${assets.kernelCmdline.join(" ")}`);
  console.log(`host load average at start: ${loadavg().map((x) => x.toFixed(2)).join(" ")}; boots per variant: ${boots}; guest memory ${memoryMiB} MiB (${WITH_SHARE ? "memfd, with a virtio-fs share as in a pod" : "anonymous, no share"}), 1 vCPU, TCG`);
  const variants: Variant[] = [];
  try {
    for (const name of values.variants.split(",")) variants.push(await variant(name));
  } catch (err) {
    if (err instanceof UsageError) exitWithUsage(USAGE, err.message);
    throw err;
  }
  const root = await mkdtemp(join(tmpdir(), "kata-ts-bench-boot-"));
  const figures: Record<string, number> = {};
  try {
    const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
    for (let i = 0; i < boots; i++) {
      for (const v of variants) {
        const id = `bench-${variants.indexOf(v)}-${i}`;
        const base: VmConfig = {
          id, stateDir: join(root, id), vcpus: 1, memoryMiB, kernelPath: assets.kernelPath,
          ...(assets.initrdPath === undefined ? {} : { initrdPath: assets.initrdPath }),
          rootfsPath: assets.rootfsPath, rootfsDevice: assets.rootfsDevice, kernelCmdline: assets.kernelCmdline, accel: "tcg",
          ...(assets.kernelTraits === undefined ? {} : { kernelTraits: assets.kernelTraits }),
        };
        const floor = await floorOnce(v, base, assets);
        samples.get(v.name)!.push({ ...(await bootOnce(v, base, assets)), floorMs: floor.ms, floorCpuMs: floor.cpuMs });
      }
    }
    for (const [name, xs] of samples) {
      const col = (f: (s: Sample) => number): number[] => xs.map(f);
      console.log(`\n[${name}]`);
      console.log(`  boot-to-agent-ready (ms):        ${describeSpread(col((s) => Math.round(s.readyMs)))}`);
      console.log(`  floor: PID 1 powers off (ms):    ${describeSpread(col((s) => Math.round(s.floorMs)))}`);
      console.log(`  QEMU CPU to agent ready (ms):    ${describeSpread(col((s) => Math.round(s.readyCpuMs)))}`);
      console.log(`  QEMU CPU, floor (ms):            ${describeSpread(col((s) => Math.round(s.floorCpuMs)))}`);
      console.log(`  guest uptime at ready (s):       ${describeSpread(col((s) => s.guestUptimeS))}`);
      console.log(`  QEMU RSS after boot (MiB):       ${describeSpread(col((s) => s.rssKiB / 1024))}`);
      console.log(`  QEMU PSS after boot (MiB):       ${describeSpread(col((s) => s.pssKiB / 1024))}`);
      if (xs.every((s) => Number.isFinite(s.pssIdleKiB))) console.log(`  QEMU PSS idle, TCG cache given back (MiB): ${describeSpread(col((s) => s.pssIdleKiB / 1024))}`);
      console.log(`  guest RAM touched (MiB):         ${describeSpread(col((s) => s.guestRamKiB / 1024))}`);
      console.log(`  guest RAM ${SETTLE_MS / 1000} s later (MiB):     ${describeSpread(col((s) => s.guestRamSettledKiB / 1024))}`);
      console.log(`  root image mapped, DAX (MiB):    ${describeSpread(col((s) => s.rootfsMappedKiB / 1024))}`);
      console.log(`  PSS settled, by mapping (MiB):   guest RAM ${median(col((s) => s.breakdown.guestRam / 1024)).toFixed(1)}, TCG code ${median(col((s) => s.breakdown.tcgCode / 1024)).toFixed(1)}, other anonymous ${median(col((s) => s.breakdown.anon / 1024)).toFixed(1)}, files ${median(col((s) => s.breakdown.files / 1024)).toFixed(1)} (largest files: ${xs[0]?.breakdown.topFiles.join(", ") ?? ""} KiB; largest anonymous: ${xs[0]?.breakdown.topAnon.join(", ") ?? ""} KiB)`);
      const mibOf = (kib: number): string => (kib / 1024).toFixed(1);
      console.log(`  TCG cache settled (MiB, flushes): host code ${describeSpread(col((s) => Math.round(s.jit.genCodeBytes / 1048576)))}; flushes ${describeSpread(col((s) => s.jit.flushes))}`);
      const image = xs[0]?.imageByFile ?? [];
      if (image.length > 0) console.log(`  root image held by QEMU, by file (MiB, first boot): ${image.slice(0, 8).map(([f, k]) => `${f} ${mibOf(k)}`).join(", ")}`);
      if (Object.keys(figures).length === 0) {
        Object.assign(figures, {
          boot_to_agent_ms: median(col((s) => s.readyMs)),
          floor_ms: median(col((s) => s.floorMs)),
          guest_ram_touched_mib: median(col((s) => s.guestRamKiB / 1024)),
          vmm_pss_mib: median(col((s) => s.pssKiB / 1024)),
          vmm_rss_mib: median(col((s) => s.rssKiB / 1024)),
          boot_to_agent_cpu_ms: median(col((s) => s.readyCpuMs)),
          floor_cpu_ms: median(col((s) => s.floorCpuMs)),
        });
        if (xs.every((s) => Number.isFinite(s.pssIdleKiB))) figures.vmm_pss_idle_mib = median(col((s) => s.pssIdleKiB / 1024));
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  console.log(`\nhost load average at end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  if (values.json) console.log(figuresLine(figures));
}

await main();
