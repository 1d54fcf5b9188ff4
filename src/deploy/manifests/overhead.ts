// The RuntimeClass's PodOverhead comes from a measurement, not a guess: bench/overhead.ts measures
// the host cost of an idle kata-ts pod (PSS and CPU of its own shim + QEMU + virtiofsd, and what
// its pod cgroup is charged) and the figures live in overhead.json beside this file, the one place
// they are kept. The overhead declared to Kubernetes is the measured idle figure plus a stated
// margin, rounded up. PodOverhead is added to each pod's cgroup limit and to the scheduler's sum
// per pod, so it covers only what grows with the pods: the node-level VM pool (its daemon, its
// ready VMs, its warm shim servers) lives in its own cgroups, is charged to no pod and does not
// grow with them; it belongs in the node's reservation (kubelet systemReserved), recorded here as
// nodeReservedMiB (docs/density.md "PodOverhead and the node's reservation").
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { KataError } from "../../util/errors.js";
import { packageRoot } from "../paths.js";

export const overheadDataSchema = z.strictObject({
  /**
   * Host memory of one idle pod's own processes (shim, QEMU, virtiofsd), MiB: the larger of their
   * PSS and what an idle pod's cgroup is charged; no share of node-level processes (podFixedBasisMiB).
   */
  measuredPssMiB: z.number().nonnegative(),
  /** Their CPU use for an idle pod, millicores (1000 = one core busy). */
  measuredCpuMillicores: z.number().nonnegative(),
  /** The same with a busy container (for reference: the container's own use is in its requests). */
  busyPssMiB: z.number().nonnegative(),
  busyCpuMillicores: z.number().nonnegative(),
  marginPercent: z.number().min(0).max(200),
  /**
   * Node-level memory of the VM pool (daemon, ready VMs, warm shim servers: PSS) + marginPercent,
   * MiB, whatever the number of pods: for the node's kubelet systemReserved, not for podFixed.
   * Absent in figures measured before it was split out.
   */
  nodeReservedMiB: z.number().nonnegative().optional(),
  measuredAt: z.string(),
  command: z.string(),
});
export type OverheadData = z.output<typeof overheadDataSchema>;

export interface PodFixedOverhead {
  memory: string;
  cpu: string;
}

export function overheadDataPath(root = packageRoot()): string {
  return join(root, "src", "deploy", "manifests", "overhead.json");
}

export function loadOverheadData(path = overheadDataPath()): OverheadData {
  const parsed = overheadDataSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new KataError("INVALID_ARGUMENT", `${path}: ${parsed.error.message}; re-run bench/overhead.ts --write`);
  return parsed.data;
}

/** measured * (1 + margin), rounded up: MiB for memory, millicores for CPU. */
export function podFixedOverhead(d: OverheadData): PodFixedOverhead {
  const f = 1 + d.marginPercent / 100;
  return {
    memory: `${Math.ceil(d.measuredPssMiB * f)}Mi`,
    cpu: `${Math.max(1, Math.ceil(d.measuredCpuMillicores * f))}m`,
  };
}

/** One run's idle figures, as bench/overhead.ts measures them with N pods at once. */
export interface IdlePodMemory {
  /** PSS of one idle pod's own processes (its shim, QEMU, virtiofsd), average over the pods, MiB. */
  podPssMiB: number;
  /** The most any idle pod's cgroup was charged (memory.usage_in_bytes / memory.current), MiB. */
  podCgroupMaxMiB: number;
  /** PSS of the node-level processes (pool daemon, ready pooled VMs, warm shims), in all, MiB. */
  nodeLevelPssMiB: number;
}

const tenth = (x: number): number => Math.round(x * 10) / 10;

/**
 * What podFixed memory is derived from: the larger of the pod's own processes' PSS (what the pod
 * really holds, which the scheduler's sum must cover even when part of it is charged elsewhere,
 * as an adopted VM's pre-adoption pages are to the pool's cgroup) and its cgroup's charge (what
 * the pod cgroup's limit must hold: shared file pages are charged whole to whoever touched them
 * first), each as the pod holds it while it works (workingPodMemory). The node-level figure takes
 * no part: it is the node's reservation. MiB, to 0.1.
 */
export function podFixedBasisMiB(m: IdlePodMemory): number {
  return tenth(Math.max(m.podPssMiB, m.podCgroupMaxMiB));
}

/** One idle pod as bench/overhead.ts reads it, MiB. */
export interface IdlePodReading {
  /** Its own processes' PSS. */
  pssMiB: number;
  /** Its pod cgroup's charge. */
  cgroupMiB: number;
  /**
   * What its QEMU would take back of the TCG translation cache it gave back while idle, once its
   * guest works again (the buffer's size less what it holds: [hypervisor.qemu] tcg_idle_trim_s);
   * 0 when nothing was given back.
   */
  tcgRefillMiB: number;
}

/**
 * The pods' figures as they hold while they work, for podFixedBasisMiB: each pod's PSS and cgroup
 * charge with the TCG cache it gave back while idle taken again (the average PSS, the most any
 * cgroup), since podFixed bounds the pod cgroup's limit, which must hold a working pod.
 */
export function workingPodMemory(pods: readonly IdlePodReading[], nodeLevelPssMiB: number): IdlePodMemory {
  if (pods.length === 0) throw new Error("workingPodMemory: no pods were measured");
  return {
    podPssMiB: pods.reduce((t, p) => t + p.pssMiB + p.tcgRefillMiB, 0) / pods.length,
    podCgroupMaxMiB: Math.max(...pods.map((p) => p.cgroupMiB + p.tcgRefillMiB)),
    nodeLevelPssMiB,
  };
}

/** The node-level memory with the same margin, rounded up (MiB): what systemReserved should add. */
export function nodeReservedMiB(m: IdlePodMemory, marginPercent: number): number {
  return Math.ceil(tenth(m.nodeLevelPssMiB) * (1 + marginPercent / 100));
}
