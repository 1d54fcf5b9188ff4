// VM size for a pod: the configured baseline plus what the pod asked for, as the CRI plugin
// passes it on the sandbox spec (Kata does the same): vcpus += ceil(quota / period), memory +=
// sandbox-memory. A pod without limits gets the baseline. The result must fit the host
// (src/host/limits.ts): vCPUs at most its online CPUs, memory at most its MemTotal; a pod that does not
// fit is refused with an error naming each figure and where it came from.
import type { QemuConfig } from "../config/index.js";
import { KataError } from "../util/errors.js";
import type { HostLimits } from "../host/limits.js";

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

/** Where the baseline came from: the configuration file's path, or "built-in defaults". */
export type ConfigSource = string;

export function podSizing(
  qemu: Pick<QemuConfig, "default_vcpus" | "default_memory">,
  ann: Record<string, string>,
  host: HostLimits,
  configSource: ConfigSource = "configuration.toml",
): PodSizing {
  const quota = intAnnotation(ann, annotations.cpuQuota);
  const period = intAnnotation(ann, annotations.cpuPeriod);
  const memBytes = intAnnotation(ann, annotations.memory);
  const extraCpus = quota > 0 && period > 0 ? Math.ceil(quota / period) : 0;
  const extraMiB = memBytes > 0 ? Math.ceil(memBytes / (1024 * 1024)) : 0;
  const sizing = { vcpus: qemu.default_vcpus + extraCpus, memoryMiB: qemu.default_memory + extraMiB };
  const base = (key: string, value: number): string =>
    `hypervisor.qemu.${key} = ${value} ${configSource === "built-in defaults" ? "(built-in default)" : `in ${configSource}`}`;
  if (sizing.vcpus > host.cpus) {
    const pod =
      extraCpus > 0
        ? ` + ${extraCpus} for the pod's CPU limit (CRI resources: annotations ${annotations.cpuQuota}=${quota}, ${annotations.cpuPeriod}=${period})`
        : "";
    throw new KataError(
      "RESOURCE_EXHAUSTED",
      `pod VM needs ${sizing.vcpus} vCPUs (${base("default_vcpus", qemu.default_vcpus)}${pod}), ` +
        `more than this host's ${host.cpus} (${host.cpusSource}): lower the pod's CPU limit or default_vcpus`,
    );
  }
  if (!(sizing.memoryMiB <= host.memoryMiB)) {
    const pod = extraMiB > 0 ? ` + ${extraMiB} MiB for the pod's memory limit (CRI resources: annotation ${annotations.memory}=${memBytes})` : "";
    throw new KataError(
      "RESOURCE_EXHAUSTED",
      `pod VM needs ${sizing.memoryMiB} MiB of memory (${base("default_memory", qemu.default_memory)}${pod}), ` +
        `more than this host's ${Number.isFinite(host.memoryMiB) ? `${host.memoryMiB} MiB` : "unknown amount"} (${host.memorySource}): ` +
        `lower the pod's memory limit or default_memory`,
    );
  }
  return sizing;
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
