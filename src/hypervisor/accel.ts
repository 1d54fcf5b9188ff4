// Choosing the accelerator. `auto` means KVM only if a real guest boots under it: an openable
// /dev/kvm proves nothing (on a nested host KVM may fail on an MSR or hang the guest). The probe
// boots the real guest under KVM within a deadline; its answer is cached per host in cacheDir(),
// keyed by host kernel release + QEMU version, so it runs once. Otherwise TCG, with a warning.
import { constants } from "node:fs";
import { access, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import { createLogger } from "../util/log.js";
import { cacheDir } from "../util/paths.js";
import { qemuVersion } from "./qemu/probe.js";
import type { Accel, ResolvedAccel } from "./types.js";

const log = createLogger("hypervisor.accel");

export interface KvmProbeResult {
  usable: boolean;
  /** What happened, for `kata-ts check` (e.g. "guest agent answered after 0.8 s"). */
  detail: string;
  /** Host kernel release + QEMU version the answer holds for. */
  key: string;
  probedAt: string;
}

/** Boots a guest under KVM and says whether it worked (see probeKvmBoot in src/sandbox/agent-boot.ts). */
export type KvmProber = () => Promise<{ usable: boolean; detail: string }>;

export function kvmProbeCachePath(): string {
  return join(cacheDir(), "kvm-probe.json");
}

export async function kvmProbeKey(): Promise<string> {
  return `linux-${release()} qemu-${await qemuVersion()}`;
}

export async function kvmDeviceOpenable(): Promise<boolean> {
  return access("/dev/kvm", constants.R_OK | constants.W_OK).then(() => true, () => false);
}

/** The cached probe answer for this host, or undefined when absent or stale. */
export async function readKvmProbe(): Promise<KvmProbeResult | undefined> {
  const text = await readFile(kvmProbeCachePath(), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const cached = JSON.parse(text) as KvmProbeResult;
    return cached.key === (await kvmProbeKey()) && typeof cached.usable === "boolean" ? cached : undefined;
  } catch {
    return undefined;
  }
}

async function writeKvmProbe(result: KvmProbeResult): Promise<void> {
  await mkdir(cacheDir(), { recursive: true });
  const tmp = `${kvmProbeCachePath()}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(result, null, 2)}\n`);
  await rename(tmp, kvmProbeCachePath());
}

let probing: Promise<KvmProbeResult> | undefined;

/** Run the probe (once per process even when asked concurrently) and cache its answer. */
export function probeKvm(prober: KvmProber): Promise<KvmProbeResult> {
  probing ??= (async () => {
    try {
      const key = await kvmProbeKey();
      const { usable, detail } = await prober();
      const result = { usable, detail, key, probedAt: new Date().toISOString() };
      await writeKvmProbe(result);
      return result;
    } finally {
      probing = undefined;
    }
  })();
  return probing;
}

let warned = false;

function fallBack(why: string): ResolvedAccel {
  if (!warned) {
    warned = true;
    log.warn(`KVM is not usable (${why}); VMs run under TCG (software emulation, several times slower)`);
  }
  return "tcg";
}

/** kvm or tcg for `requested`; `auto` consults the cache, then the prober if one is given. */
export async function resolveAccel(requested: Accel, prober?: KvmProber): Promise<ResolvedAccel> {
  if (requested === "tcg") return "tcg";
  const openable = await kvmDeviceOpenable();
  if (requested === "kvm") {
    if (!openable) throw new KataError("FAILED_PRECONDITION", "accel=kvm but /dev/kvm is absent or not accessible; use accel=auto or tcg");
    return "kvm";
  }
  if (!openable) return fallBack("/dev/kvm absent");
  const cached = await readKvmProbe();
  if (cached !== undefined) return cached.usable ? "kvm" : fallBack(`boot probe: ${cached.detail}`);
  if (prober === undefined) return fallBack("not probed yet on this host; `kata-ts check` probes it");
  const result = await probeKvm(prober);
  return result.usable ? "kvm" : fallBack(`boot probe: ${result.detail}`);
}
