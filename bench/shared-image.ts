// Shared-image benchmark: prints figures, asserts nothing. Boots N VMs at once per variant (the
// real guest, agent answering), lets free page reporting settle, then reads every QEMU's PSS. With
// the image on virtio-pmem (q35-pmem) each QEMU maps the same image file read-only and private, so
// the pages the guests execute are the host's page-cache pages, counted once and split N ways in
// PSS: the PSS per VM falls as VMs are added. With the image on virtio-blk each guest reads its own
// copy into its RAM. Variants take turns (all VMs of one variant are stopped before the next).
// Usage: see USAGE below (`node dist/bench/shared-image.js --help`).
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadGuestAssets } from "../src/guest/assets.js";
import { QemuHypervisor, type QemuHypervisorOptions } from "../src/hypervisor/qemu/index.js";
import type { VmConfig } from "../src/hypervisor/types.js";
import { bootVm, type BootedVm } from "../src/sandbox/agent-boot.js";
import { withPodShare, type PodShare } from "./lib/pod-share.js";
import { checkOptions, intOption, parseBenchArgs, UsageError } from "./lib/args.js";
import { figuresLine, median } from "./lib/figures.js";
import { mappingPssKiB, smapsRollup } from "./lib/vmm-memory.js";

const variants: Record<string, QemuHypervisorOptions> = {
  "microvm-disk": { machine: "microvm", imageDevice: "disk" },
  "q35-disk": { machine: "q35", imageDevice: "disk" },
  "q35-pmem": { machine: "q35", imageDevice: "pmem" },
};

const USAGE = `usage: node dist/bench/shared-image.js [--vms 1,4] [--variants V1,V2] [--memory MiB] [--settle-s N] [--json]

Boots N VMs at once (the guest from the installed assets; KATA_TS_ASSETS_DIR moves them), TCG,
1 vCPU each, waits until every agent answered and --settle-s more seconds, then prints the QEMU
PSS per VM (sum of PSS / N) and the PSS of the root image's mapping per VM.
Each VM has the virtio-fs share a pod's VM has (a virtiofsd serving an empty directory), so guest RAM
is the memfd a pod has.

  --vms L         comma-separated VM counts (default 1,4)
  --variants L    comma-separated, of: ${Object.keys(variants).join(", ")} (default microvm-disk,q35-pmem)
  --memory MiB    guest memory (default 512)
  --settle-s N    seconds after the last agent answered (default 10)
  --json          end with {"figures": {"pss_per_vm_mib_<variant>_<n>": ..., "image_pss_per_vm_mib_<variant>_<n>": ...}}
  --help          this text`;

/** A booted VM with the virtio-fs share a pod's VM has (guest RAM a memfd: bench/lib/pod-share.ts). */
interface PodVm {
  booted: BootedVm;
  share: PodShare;
}

async function bootAll(hv: QemuHypervisor, base: Omit<VmConfig, "id" | "stateDir">, root: string, tag: string, n: number): Promise<PodVm[]> {
  const vms: PodVm[] = [];
  try {
    // One after the other: n TCG boots at once on a 2-core host would only time each other out.
    for (let i = 0; i < n; i++) {
      const id = `${tag}-${i}`;
      const share = await withPodShare({ ...base, id, stateDir: join(root, id) });
      const booted = await bootVm(share.config, { deadlineMs: 240_000, hypervisor: hv }).catch(async (err: unknown) => {
        await share.stop();
        throw err;
      });
      vms.push({ booted, share });
    }
    return vms;
  } catch (err) {
    await stopAll(vms);
    throw err;
  }
}

async function stopAll(vms: readonly PodVm[]): Promise<void> {
  for (const { booted, share } of [...vms].reverse()) {
    booted.agent.close();
    await booted.vm.stop();
    await share.stop();
  }
}

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      vms: { type: "string", default: "1,4" },
      variants: { type: "string", default: "microvm-disk,q35-pmem" },
      memory: { type: "string", default: "512" },
      "settle-s": { type: "string", default: "10" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const { counts, names, memoryMiB, settleMs } = checkOptions(USAGE, () => {
    const names = values.variants.split(",");
    for (const n of names) if (variants[n] === undefined) throw new UsageError(`unknown variant ${JSON.stringify(n)}; known: ${Object.keys(variants).join(", ")}`);
    return {
      counts: values.vms.split(",").map((c) => intOption("vms", c, 1)),
      names,
      memoryMiB: intOption("memory", values.memory, 128),
      settleMs: intOption("settle-s", values["settle-s"], 0) * 1000,
    };
  });
  const assets = await loadGuestAssets();
  const imageKiB = assets.manifest.artifacts.rootfs.size / 1024;
  console.log(`host load average at start: ${loadavg().map((x) => x.toFixed(2)).join(" ")}; guest memory ${memoryMiB} MiB, 1 vCPU, TCG; image ${(imageKiB / 1024).toFixed(1)} MiB`);
  const root = await mkdtemp(join(tmpdir(), "kata-ts-bench-shared-"));
  const figures: Record<string, number> = {};
  try {
    for (const n of counts) {
      for (const name of names) {
        const hv = await QemuHypervisor.open(variants[name]);
        const base = {
          vcpus: 1, memoryMiB, kernelPath: assets.kernelPath, rootfsPath: assets.rootfsPath, kernelCmdline: assets.kernelCmdline, accel: "tcg" as const,
          ...(assets.initrdPath === undefined ? {} : { initrdPath: assets.initrdPath }),
        };
        const booted = await bootAll(hv, base, root, `${name}-${n}`, n);
        try {
          await sleep(settleMs);
          const pids = booted.map((b) => b.booted.vm.pid ?? 0);
          const pss = await Promise.all(pids.map(async (pid) => (await smapsRollup(pid)).pssKiB));
          const imagePss = await Promise.all(pids.map((pid) => mappingPssKiB(pid, imageKiB, assets.rootfsPath)));
          const perVm = pss.reduce((a, b) => a + b, 0) / n / 1024;
          const imagePerVm = imagePss.reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0) / n / 1024;
          console.log(`[${name}] ${n} VM(s): QEMU PSS per VM ${perVm.toFixed(1)} MiB (each: ${pss.map((p) => (p / 1024).toFixed(1)).join(", ")}); image mapping PSS per VM ${imagePerVm.toFixed(1)} MiB; ready in ${median(booted.map((b) => b.booted.timings.agentReadyMs)).toFixed(0)} ms (median)`);
          figures[`pss_per_vm_mib_${name}_${n}`] = perVm;
          figures[`image_pss_per_vm_mib_${name}_${n}`] = imagePerVm;
        } finally {
          await stopAll(booted);
        }
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  console.log(`host load average at end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  if (values.json) console.log(figuresLine(figures));
}

await main();
