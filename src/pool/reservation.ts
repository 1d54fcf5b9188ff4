// What the VM pool holds on a node, for the node's reservation. The pool's daemon, its ready VMs
// and its warm shim servers live in the pool's own cgroups (kata-ts-pool-daemon, kata-ts-pool-vms),
// are charged to no pod and do not grow with the pods, so PodOverhead (added to every pod's cgroup
// limit and to the scheduler's per-pod sum) must not carry them: in Kubernetes such node-level
// memory is taken out of the node's allocatable by kubelet's systemReserved. bench/overhead.ts
// measures it for the default pool (one daemon, one ready VM, one warm shim server) and stores it
// with its margin as overhead.json's nodeReservedMiB; other pool sizes add the estimates below.
import type { KataConfig } from "../config/index.js";
import { loadOverheadData } from "../deploy/manifests/overhead.js";

/** PSS of the parts, MiB, 512 MiB guest, TCG (docs/pool.md "Memory cost", 10 pods beside): used without a measurement and to scale it. */
export const POOL_PART_PSS_MIB = { daemon: 16, readyVm: 105, warmShim: 18 } as const;

export interface PoolMeasurement {
  /** overhead.json's nodeReservedMiB: the default pool's PSS + marginPercent. */
  nodeReservedMiB?: number;
  marginPercent: number;
}

export interface PoolReservation {
  /** MiB to add to kubelet's systemReserved memory; 0 with the pool off. */
  mib: number;
  /** measured: from overhead.json (scaled to the configured counts); estimated: from POOL_PART_PSS_MIB. */
  basis: "measured" | "estimated" | "off";
  text: string;
}

/** The memory the configured pool holds on the node (with the measurement's margin), and a sentence saying where it belongs. */
export function poolReservation(factory: KataConfig["factory"], m: PoolMeasurement): PoolReservation {
  if (!factory.enable_pool) return { mib: 0, basis: "off", text: "the VM pool is off: nothing to reserve for it" };
  const f = 1 + m.marginPercent / 100;
  const vms = factory.pool_size * factory.max_shapes;
  const p = POOL_PART_PSS_MIB;
  const measured = m.nodeReservedMiB !== undefined;
  // The measurement is of the default pool: 1 VM, 1 warm shim server; more or fewer by the estimates.
  const mib = measured
    ? Math.max(0, Math.ceil(m.nodeReservedMiB! + ((vms - 1) * p.readyVm + (factory.warm_shims - 1) * p.warmShim) * f))
    : Math.ceil((p.daemon + vms * p.readyVm + factory.warm_shims * p.warmShim) * f);
  const basis = measured ? "measured" : "estimated";
  const text =
    `the VM pool holds ~${mib} MiB of node memory (${basis}, + ${m.marginPercent}%: its daemon, ${vms} ready VM(s), ${factory.warm_shims} warm shim server(s)) ` +
    `in its own cgroups, charged to no pod and not part of PodOverhead: add ${mib}Mi to kubelet's systemReserved memory`;
  return { mib, basis, text };
}

/** The configured pool's reservation from this build's overhead.json, or the estimate when it has none (`kata-ts check`, `install`). */
export function configuredPoolReservation(factory: KataConfig["factory"]): PoolReservation {
  let measured: PoolMeasurement = { marginPercent: 25 };
  try {
    const d = loadOverheadData();
    measured = { nodeReservedMiB: d.nodeReservedMiB, marginPercent: d.marginPercent };
  } catch {
    // no overhead.json beside this build: the estimate
  }
  return poolReservation(factory, measured);
}
