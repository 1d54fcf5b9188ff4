// VM size for a pod: the configured baseline plus what the pod asked for, as the CRI plugin
// passes it on the sandbox spec (Kata does the same): vcpus += ceil(quota / period), memory +=
// sandbox-memory. A pod without limits gets the baseline. The result must fit the host
// (src/host/limits.ts). vCPUs: a CPU limit is a ceiling, and runc runs a pod whose limit exceeds
// the node's CPUs, so the pod's share is capped at the host's online CPUs (Kata's default_maxvcpus
// does the same); only a configured baseline beyond the host is refused, as a configuration error.
// Memory is refused beyond MemTotal: guest RAM is allocated lazily, so such a VM would start and
// fail later. Errors name each figure and where it came from.
import type { HypervisorName, VmmSectionConfig } from "../config/index.js";
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
  /** Of memoryMiB, what the pod's memory limits added (0 without limits). */
  limitsMiB: number;
  /** Set when the pod's CPU limit asked for more vCPUs than the host has: what was asked, and why fewer. */
  vcpusCapped?: string;
}

/** Where the baseline came from: the configuration file's path, or "built-in defaults". */
export type ConfigSource = string;

export function podSizing(
  qemu: Pick<VmmSectionConfig, "default_vcpus" | "default_memory">,
  ann: Record<string, string>,
  host: HostLimits,
  configSource: ConfigSource = "configuration.toml",
  /** The [hypervisor.<name>] section the baseline came from, for error messages. */
  vmm: HypervisorName = "qemu",
): PodSizing {
  const quota = intAnnotation(ann, annotations.cpuQuota);
  const period = intAnnotation(ann, annotations.cpuPeriod);
  const memBytes = intAnnotation(ann, annotations.memory);
  const extraCpus = quota > 0 && period > 0 ? Math.ceil(quota / period) : 0;
  const extraMiB = memBytes > 0 ? Math.ceil(memBytes / (1024 * 1024)) : 0;
  const base = (key: string, value: number): string =>
    `hypervisor.${vmm}.${key} = ${value} ${configSource === "built-in defaults" ? "(built-in default)" : `in ${configSource}`}`;
  if (qemu.default_vcpus > host.cpus) {
    throw new KataError(
      "RESOURCE_EXHAUSTED",
      `pod VM needs ${qemu.default_vcpus} vCPUs (${base("default_vcpus", qemu.default_vcpus)}), more than this host's ${host.cpus} (${host.cpusSource}): lower default_vcpus`,
    );
  }
  const wantedVcpus = qemu.default_vcpus + extraCpus;
  const sizing: PodSizing = { vcpus: Math.min(wantedVcpus, host.cpus), memoryMiB: qemu.default_memory + extraMiB, limitsMiB: extraMiB };
  if (wantedVcpus > host.cpus) {
    sizing.vcpusCapped =
      `the pod's CPU limit asks for ${wantedVcpus} vCPUs (${base("default_vcpus", qemu.default_vcpus)} + ${extraCpus} from annotations ` +
      `${annotations.cpuQuota}=${quota}, ${annotations.cpuPeriod}=${period}); the VM gets this host's ${host.cpus} (${host.cpusSource})`;
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
