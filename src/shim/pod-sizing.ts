// VM size for a pod: the configured baseline plus what the pod asked for, as the CRI plugin
// passes it on the sandbox spec (Kata does the same): vcpus += ceil(quota / period), memory +=
// sandbox-memory. A pod without limits gets the baseline.
import type { QemuConfig } from "../config/index.js";
import { KataError } from "../util/errors.js";

export const annotations = {
  containerType: "io.kubernetes.cri.container-type",
  sandboxId: "io.kubernetes.cri.sandbox-id",
  cpuQuota: "io.kubernetes.cri.sandbox-cpu-quota",
  cpuPeriod: "io.kubernetes.cri.sandbox-cpu-period",
  memory: "io.kubernetes.cri.sandbox-memory",
} as const;

export interface PodSizing {
  vcpus: number;
  memoryMiB: number;
}

const maxVcpus = 256;

export function podSizing(qemu: Pick<QemuConfig, "default_vcpus" | "default_memory">, ann: Record<string, string>): PodSizing {
  const quota = intAnnotation(ann, annotations.cpuQuota);
  const period = intAnnotation(ann, annotations.cpuPeriod);
  const memBytes = intAnnotation(ann, annotations.memory);
  const extraCpus = quota > 0 && period > 0 ? Math.ceil(quota / period) : 0;
  const extraMiB = memBytes > 0 ? Math.ceil(memBytes / (1024 * 1024)) : 0;
  return {
    vcpus: Math.min(maxVcpus, qemu.default_vcpus + extraCpus),
    memoryMiB: qemu.default_memory + extraMiB,
  };
}

function intAnnotation(ann: Record<string, string>, key: string): number {
  const text = ann[key];
  if (text === undefined || text === "") return 0;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new KataError("INVALID_ARGUMENT", `annotation ${key}="${text}" is not an integer`);
  }
  return value;
}
