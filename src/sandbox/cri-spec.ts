// What the CRI plugin's OCI specs ask of a pod that a VM cannot give, and the pod-level settings
// the guest must apply. containerd 1.6 writes a hostPID pod as a spec without a pid namespace and a
// hostIPC pod as one without an ipc namespace (hostNetwork: no network namespace, see
// network/pod-spec.ts); shareProcessNamespace as a pid namespace whose path is the sandbox task's;
// Bidirectional mount propagation as an "rshared" mount option; the pod's sysctls as linux.sysctl
// of the sandbox spec only.
import { KataError } from "../util/errors.js";

interface SpecView {
  linux?: {
    namespaces?: { type: string; path?: string }[];
    sysctl?: Record<string, unknown>;
    devices?: { path: string; type: string }[];
    resources?: { devices?: { allow: boolean; type?: string; major?: number; minor?: number }[] };
  };
  mounts?: { destination: string; source?: string; options?: string[] }[];
}

function view(spec: object): SpecView {
  return spec as SpecView;
}

function namespace(spec: object, type: string): { type: string; path?: string } | undefined {
  const list = view(spec).linux?.namespaces;
  return Array.isArray(list) ? list.find((n) => n.type === type) : undefined;
}

export const HOST_PID_REFUSED =
  "kata-ts cannot run a hostPID pod: the pod runs in its own VM with its own kernel, so the node's processes do not exist " +
  "there to be shared. Drop hostPID: true, or run this pod with a runtime that shares the host kernel (e.g. runc)";

export const HOST_IPC_REFUSED =
  "kata-ts cannot run a hostIPC pod: the pod runs in its own VM with its own kernel, so it cannot share the node's IPC " +
  "namespace (shared memory, semaphores, message queues). Drop hostIPC: true, or run this pod with a runtime that shares the host kernel (e.g. runc)";

/** Throws FAILED_PRECONDITION for a spec that asks for the host's PID or IPC namespace. */
export function requireOwnPidAndIpc(spec: object): void {
  if (namespace(spec, "pid") === undefined) throw new KataError("FAILED_PRECONDITION", HOST_PID_REFUSED);
  if (namespace(spec, "ipc") === undefined) throw new KataError("FAILED_PRECONDITION", HOST_IPC_REFUSED);
}

/**
 * An app container's PID namespace mode (CRI NamespaceMode): "pod" joins the sandbox's (a path),
 * "container" gets its own (no path). A missing pid namespace (NODE) is refused.
 */
export function pidNamespaceMode(spec: object): "pod" | "container" {
  const ns = namespace(spec, "pid");
  if (ns === undefined) throw new KataError("FAILED_PRECONDITION", HOST_PID_REFUSED);
  return ns.path !== undefined && ns.path !== "" ? "pod" : "container";
}

/**
 * Throws INVALID_ARGUMENT for a mount with Bidirectional propagation ("rshared"/"shared"): mounts
 * made in the guest cannot reach the host through virtio-fs, so the promise cannot be kept.
 */
export function refuseSharedPropagation(spec: object): void {
  for (const m of view(spec).mounts ?? []) {
    if ((m.options ?? []).some((o) => o === "rshared" || o === "shared")) {
      throw new KataError(
        "INVALID_ARGUMENT",
        `kata-ts cannot give mount ${m.destination} Bidirectional (rshared) propagation: the container runs in a VM, and mounts made ` +
          "inside it never reach the host (or other pods). Use mountPropagation: HostToContainer or None, or run this pod with runc",
      );
    }
  }
}

/** The sandbox spec's linux.sysctl, as strings; a non-string value is a malformed spec. */
export function podSysctls(spec: object): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(view(spec).linux?.sysctl ?? {})) {
    if (typeof value !== "string") throw new KataError("INVALID_ARGUMENT", `sysctl ${name} has a ${typeof value} value; OCI linux.sysctl values are strings`);
    out[name] = value;
  }
  return out;
}

/**
 * Throws INVALID_ARGUMENT for a block device given to the container (CRI devices, a raw block
 * volume): host devices are not hot-added to the VM, so the container would not get it. A
 * privileged container's spec lists every host device (it allows all in the device cgroup); those
 * are dropped in the guest, which has its own.
 */
export function refuseBlockDevices(spec: object): void {
  const linux = view(spec).linux;
  const allowsAll = (linux?.resources?.devices ?? []).some((d) => d.allow && (d.type === undefined || d.type === "a") && d.major === undefined && d.minor === undefined);
  if (allowsAll) return;
  const block = (linux?.devices ?? []).find((d) => d.type === "b");
  if (block !== undefined) {
    throw new KataError(
      "INVALID_ARGUMENT",
      `kata-ts cannot give the container block device ${block.path}: host devices are not hot-added to the pod's VM yet. ` +
        "Use a filesystem volume instead of volumeDevices, or run this pod with runc",
    );
  }
}
