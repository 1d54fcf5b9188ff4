// Boot benchmark: prints figures, asserts nothing. For each QEMU tuning variant, boots the real
// guest N times and reports boot-to-agent-ready wall time (QEMU spawn -> Health.Check answered),
// the guest's uptime when its agent answered (Version.uptime_seconds), and the VMM's memory after
// boot (RSS/PSS from /proc/<pid>/smaps_rollup: the agent has no meminfo RPC yet). Also the asset
// sizes from the manifest.
//   node dist/bench/boot.js [--boots 5] [--variants default,cpu-qemu64,tcg-single,tb-32,tb-1024,no-seccomp] [--memory 512]
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadGuestAssets } from "../src/guest/assets.js";
import { bootVm } from "../src/hypervisor/boot.js";
import { QemuHypervisor, type QemuHypervisorOptions } from "../src/hypervisor/qemu/index.js";

const variants: Record<string, QemuHypervisorOptions> = {
  default: {},
  "cpu-qemu64": { cpuModel: "qemu64" },
  "cpu-host-like-Skylake": { cpuModel: "Skylake-Client-v4" },
  "tcg-single": { tcgThread: "single" },
  "tb-32": { tcgTbSizeMiB: 32 },
  "tb-64": { tcgTbSizeMiB: 64 },
  "tb-128": { tcgTbSizeMiB: 128 },
  /** QEMU 7.2's own default. */
  "tb-1024": { tcgTbSizeMiB: 1024 },
  "no-seccomp": { seccomp: false },
};

interface Sample {
  readyMs: number;
  guestUptimeS: number;
  rssKiB: number;
  pssKiB: number;
  guestRamKiB: number;
}

/** Resident pages of the guest-RAM mapping (the one mapping exactly memoryMiB): what the guest touched. */
async function guestRamResident(pid: number, memoryMiB: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps`, "utf8").catch(() => "");
  const blocks = text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  for (const b of blocks) {
    if (Number(/^Size:\s+(\d+) kB/m.exec(b)?.[1]) === memoryMiB * 1024) return Number(/^Rss:\s+(\d+) kB/m.exec(b)?.[1] ?? NaN);
  }
  return NaN;
}

async function smapsRollup(pid: number): Promise<{ rssKiB: number; pssKiB: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { rssKiB: field("Rss"), pssKiB: field("Pss") };
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const f = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  return `median ${f(median)}  min ${f(s[0]!)}  max ${f(s[s.length - 1]!)}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { boots: { type: "string", default: "5" }, variants: { type: "string", default: "default" }, memory: { type: "string", default: "512" } },
  });
  const boots = Number(values.boots);
  const assets = await loadGuestAssets();
  const a = assets.manifest.artifacts;
  const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  console.log(`guest ${assets.kernelRelease}: kernel ${mib(a.kernel.size)}, initrd ${a.initrd ? mib(a.initrd.size) : "none"}, rootfs (${assets.rootfsFormat}) ${mib(a.rootfs.size)}`);
  console.log(`host load average at start: ${loadavg().map((x) => x.toFixed(2)).join(" ")}; boots per variant: ${boots}; guest memory ${values.memory} MiB, 1 vCPU, TCG`);
  const root = await mkdtemp(join(tmpdir(), "kata-ts-bench-boot-"));
  try {
    // Variants take turns round by round, so that a change in host load hits them all alike.
    const names = values.variants.split(",");
    const hypervisors = new Map<string, QemuHypervisor>();
    for (const name of names) {
      const opts = variants[name];
      if (opts === undefined) throw new Error(`unknown variant ${name}; known: ${Object.keys(variants).join(", ")}`);
      hypervisors.set(name, await QemuHypervisor.open(opts));
    }
    const samples = new Map<string, Sample[]>(names.map((n) => [n, []]));
    for (let i = 0; i < boots; i++) {
      for (const name of names) {
        const id = `bench-${name}-${i}`;
        const booted = await bootVm(
          {
            id, stateDir: join(root, id), vcpus: 1, memoryMiB: Number(values.memory), kernelPath: assets.kernelPath,
            ...(assets.initrdPath === undefined ? {} : { initrdPath: assets.initrdPath }),
            rootfsPath: assets.rootfsPath, kernelCmdline: assets.kernelCmdline, accel: "tcg",
          },
          { deadlineMs: 180_000, hypervisor: hypervisors.get(name)! },
        );
        try {
          const version = await booted.health.version({}, { timeoutMs: 10_000 });
          const mem = await smapsRollup(booted.vm.pid ?? 0);
          const guestRamKiB = await guestRamResident(booted.vm.pid ?? 0, Number(values.memory));
          samples.get(name)!.push({ readyMs: booted.timings.agentReadyMs, guestUptimeS: version.uptimeSeconds, ...mem, guestRamKiB });
        } finally {
          booted.agent.close();
          await booted.vm.stop();
        }
      }
    }
    for (const [name, xs] of samples) {
      console.log(`\n[${name}]`);
      console.log(`  boot-to-agent-ready (ms):     ${stats(xs.map((s) => Math.round(s.readyMs)))}`);
      console.log(`  guest uptime at ready (s):    ${stats(xs.map((s) => s.guestUptimeS))}`);
      console.log(`  QEMU RSS after boot (MiB):    ${stats(xs.map((s) => s.rssKiB / 1024))}`);
      console.log(`  QEMU PSS after boot (MiB):    ${stats(xs.map((s) => s.pssKiB / 1024))}`);
      console.log(`  guest RAM touched (MiB):      ${stats(xs.map((s) => s.guestRamKiB / 1024))}`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  console.log(`\nhost load average at end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

await main();
