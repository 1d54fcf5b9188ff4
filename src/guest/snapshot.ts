// The agent's V8 startup snapshot, built inside a VM. node only loads a snapshot made by the same
// node build under the same V8 configuration, and that configuration depends on the machine: a
// snapshot made on the host is rejected in the guest ("built with a different version of V8 or
// with different V8 configurations"). So build-assets boots the fresh image once with
// kata_ts.snapshot=build; the guest init runs `node --build-snapshot` there and writes the blob to
// a second, writable disk. The guest init falls back to the plain script when a snapshot is
// rejected (e.g. another CPU model under KVM), so a snapshot can only make boots faster.
import { spawn } from "node:child_process";
import { open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import { machineAcpi, machineKernelParams, renderMachine, virtioDevice, virtioTransport } from "../hypervisor/qemu/args/machine.js";
import { renderMemory } from "../hypervisor/qemu/args/memory.js";
import { pmemPlacement, renderPmem } from "../hypervisor/qemu/args/pmem.js";
import { qemuBinary } from "../hypervisor/qemu/probe.js";
import { SNAPSHOT_BUILD_PARAM, SNAPSHOT_BYTES_PREFIX } from "./init-scripts.js";

const OUT_DISK_BYTES = 64 * 1024 * 1024;

export interface SnapshotVmOptions {
  kernelPath: string;
  /** Absent for a kernel with its drivers built in. */
  initrdPath?: string;
  rootfsPath: string;
  rootfsDevice?: "virtio-blk" | "virtio-pmem";
  kernelCmdline: readonly string[];
  workDir: string;
  memoryMiB?: number;
  timeoutMs?: number;
}

/**
 * Host TSC frequency in kHz from /proc/cpuinfo when the TSC is constant. Under TCG the guest kernel
 * sometimes fails to calibrate its TSC against the emulated PIT on a busy host, and then waits
 * forever for timer ticks; tsc_early_khz skips the calibration.
 */
export async function hostTscKhz(): Promise<number | undefined> {
  const info = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  if (!/\bconstant_tsc\b/.test(info)) return undefined;
  const mhz = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(info)?.[1];
  return mhz === undefined ? undefined : Math.round(Number(mhz) * 1000);
}

export function snapshotVmArgs(opts: SnapshotVmOptions, consolePath: string, outDisk: string, tscKhz: number | undefined, rootfsBytes = 0): string[] {
  const pmem = opts.rootfsDevice === "virtio-pmem";
  // A pmem root needs a machine that maps memory devices (q35; microvm does not).
  const machine = pmem ? "q35" : "microvm";
  const append = ["console=ttyS0", ...machineKernelParams(machine, opts.kernelCmdline), SNAPSHOT_BUILD_PARAM, ...(tscKhz === undefined ? [] : [`tsc_early_khz=${tscKhz}`])];
  const blk = virtioDevice("virtio-blk", virtioTransport(machine));
  const acpi = machineAcpi(machine, opts.kernelCmdline);
  const memoryMiB = opts.memoryMiB ?? 512;
  const placement = pmemPlacement({ ramMiB: memoryMiB, acpi, imageBytes: rootfsBytes });
  return [
    ...renderMachine({ type: machine, acpi }),
    ...["-accel", "tcg", "-cpu", "max", "-smp", "1"],
    ...renderMemory({ sizeMiB: memoryMiB, shared: false, ...(pmem ? { deviceMemoryBytes: placement.deviceMemoryBytes } : {}) }),
    ...["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"],
    ...["-kernel", opts.kernelPath, ...(opts.initrdPath === undefined ? [] : ["-initrd", opts.initrdPath]), "-append", append.join(" ")],
    ...["-serial", `file:${consolePath}`],
    ...(pmem
      ? renderPmem({ id: "root", path: opts.rootfsPath, sizeBytes: rootfsBytes, ...(placement.address === undefined ? {} : { address: placement.address }) })
      : ["-device", `${blk},drive=root`, "-drive", `id=root,file=${opts.rootfsPath},format=raw,if=none,readonly=on`]),
    ...["-device", `${blk},drive=out`, "-drive", `id=out,file=${outDisk},format=raw,if=none`],
  ];
}

/** The "<prefix> N" line of a snapshot-building boot's console, or undefined. */
export function parseSnapshotBytes(consoleText: string): number | undefined {
  const line = consoleText.split("\n").find((l) => l.startsWith(SNAPSHOT_BYTES_PREFIX));
  const n = line === undefined ? NaN : Number(line.slice(SNAPSHOT_BYTES_PREFIX.length).trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function runQemu(args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(qemuBinary, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new KataError("NOT_FOUND", `cannot run ${qemuBinary}: ${err.message}`, { cause: err }));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new KataError(signal === "SIGKILL" ? "DEADLINE_EXCEEDED" : "INTERNAL", `snapshot build VM ${signal === "SIGKILL" ? `did not finish in ${timeoutMs} ms` : `exited with ${code}`}: ${stderr.trim()}`));
    });
  });
}

/** Boot the image once to make the agent snapshot; returns the blob. */
export async function buildAgentSnapshotInVm(opts: SnapshotVmOptions): Promise<Uint8Array> {
  const consolePath = join(opts.workDir, "snapshot-vm.console.log");
  const outDisk = join(opts.workDir, "snapshot-vm.out.img");
  await rm(consolePath, { force: true });
  await writeFile(outDisk, "");
  const fh = await open(outDisk, "r+");
  try {
    await fh.truncate(OUT_DISK_BYTES);
  } finally {
    await fh.close();
  }
  try {
    const rootfsBytes = (await stat(opts.rootfsPath)).size;
    await runQemu(snapshotVmArgs(opts, consolePath, outDisk, await hostTscKhz(), rootfsBytes), opts.timeoutMs ?? 600_000);
    const consoleText = await readFile(consolePath, "utf8").catch(() => "");
    const bytes = parseSnapshotBytes(consoleText);
    if (bytes === undefined) {
      const tail = consoleText.trim().split("\n").slice(-5).join("\n");
      throw new KataError("INTERNAL", `the snapshot build VM did not report a snapshot (console ${consolePath}):\n${tail}`);
    }
    if (bytes > OUT_DISK_BYTES) throw new KataError("RESOURCE_EXHAUSTED", `agent snapshot of ${bytes} bytes does not fit the ${OUT_DISK_BYTES}-byte output disk`);
    const disk = await readFile(outDisk);
    return disk.subarray(0, bytes);
  } finally {
    await rm(outDisk, { force: true });
  }
}
