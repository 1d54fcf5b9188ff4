// Turns the OCI spec the host sent into the one crun runs inside the guest. The host's spec was
// written for the host's kernel: namespace paths name host /proc entries, devices are host device
// nodes, hooks are host binaries, bind mounts name host files. In the guest the VM itself is the
// pod, so those are dropped or replaced and the rest (process, user, rlimits, capabilities,
// seccomp, masked paths, resources) is kept as it is.
import { KataError } from "../../util/errors.js";
import { isBindMount } from "../../protocol/contract/guest.js";
import type { OciMount, OciNamespace, OciProcess, OciSpec } from "../../protocol/contract/oci.js";

export interface GuestSpecOptions {
  containerId: string;
  /** Guest path of the container's root file system. */
  rootfs: string;
  /** Guest directories whose files may be bind-mounted into containers (e.g. the shared fs). */
  bindSourceRoots: string[];
  /**
   * The pod's shared PID namespace (/proc/<pause pid>/ns/pid in the guest) for a container the
   * host asked to join it (CRI NamespaceMode POD); undefined: a private one (CONTAINER).
   */
  sandboxPidnsPath?: string | undefined;
  /** The container's cgroup v2 path in the guest, relative to the cgroup root. */
  cgroupsPath: string;
}

export interface GuestSpecResult {
  spec: OciSpec;
  /** What was dropped and why: the agent logs it so that a missing mount is explainable. */
  dropped: string[];
}

// Kernel file systems the container's own kernel (the guest's) provides; never host-specific.
const KERNEL_FS = new Set(["proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "shm"]);

export function parseSpec(json: string): OciSpec {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", "the OCI spec is not valid JSON: send config.json as it is", { cause: err });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new KataError("INVALID_ARGUMENT", "the OCI spec must be a JSON object");
  }
  const spec = value as OciSpec;
  if (spec.process !== undefined) checkProcess(spec.process);
  return spec;
}

/** Checks the fields crun needs in a process; used for init processes and exec'd ones. */
export function checkProcess(p: unknown): OciProcess {
  const proc = p as OciProcess;
  if (typeof proc !== "object" || proc === null) throw new KataError("INVALID_ARGUMENT", "the OCI process must be an object");
  if (!Array.isArray(proc.args) || proc.args.length === 0 || !proc.args.every((a) => typeof a === "string")) {
    throw new KataError("INVALID_ARGUMENT", "the OCI process needs args: a non-empty list of strings (the command to run)");
  }
  if (typeof proc.cwd !== "string" || !proc.cwd.startsWith("/")) {
    throw new KataError("INVALID_ARGUMENT", `the OCI process cwd must be an absolute path, got ${JSON.stringify(proc.cwd)}`);
  }
  if (typeof proc.user !== "object" || proc.user === null || typeof proc.user.uid !== "number" || typeof proc.user.gid !== "number") {
    throw new KataError("INVALID_ARGUMENT", "the OCI process needs user.uid and user.gid (numbers)");
  }
  return proc;
}

export function toGuestSpec(host: OciSpec, opts: GuestSpecOptions): GuestSpecResult {
  if (host.process === undefined) {
    throw new KataError("INVALID_ARGUMENT", "the OCI spec has no process: a container needs something to run");
  }
  const dropped: string[] = [];
  // A deep copy, so that the caller's object (and any retry) never sees our edits.
  const spec = structuredClone(host);
  spec.root = { path: opts.rootfs, readonly: host.root?.readonly ?? false };

  if (spec.hooks !== undefined) {
    dropped.push("hooks: they name host binaries");
    delete spec.hooks;
  }
  if (spec.process !== undefined) {
    // No SELinux or AppArmor in the guest kernel; crun would fail to apply the labels.
    for (const key of ["apparmorProfile", "selinuxLabel"] as const) {
      if (spec.process[key] !== undefined) {
        dropped.push(`process.${key}: no LSM in the guest`);
        delete spec.process[key];
      }
    }
  }
  spec.mounts = (spec.mounts ?? []).filter((m) => keepMount(m, opts, dropped));

  const linux = spec.linux ?? {};
  spec.linux = linux;
  linux.namespaces = guestNamespaces(linux.namespaces ?? [], opts, dropped);
  if (linux.devices !== undefined && linux.devices.length > 0) {
    dropped.push(`linux.devices (${linux.devices.length}): host device nodes do not exist in the guest`);
  }
  delete linux.devices;
  if (linux.sysctl !== undefined) {
    // The pod's sysctls are set in the guest at CreateSandbox, in the namespaces the containers
    // share; crun would refuse net.* ones for a container without its own network namespace.
    dropped.push("linux.sysctl: applied pod-wide when the sandbox was created");
    delete linux.sysctl;
  }
  if (linux.mountLabel !== undefined) {
    dropped.push("linux.mountLabel: no SELinux in the guest");
    delete linux.mountLabel;
  }
  // Host cgroup paths mean nothing in the guest: every container gets its own leaf under one parent.
  linux.cgroupsPath = opts.cgroupsPath;
  // Under TCG the agent, and so crun, may run without address-space randomization (the guest init
  // starts it with ADDR_NO_RANDOMIZE: see docs/containers.md), and a personality is inherited
  // across exec. crun sets the spec's personality in the container process just before it execs
  // the app, so the plain Linux one gives the app its randomized address space back, in `run` and
  // `exec` alike. A personality the spec asks for is kept.
  linux.personality ??= { domain: "LINUX" };
  return { spec, dropped };
}

function keepMount(m: OciMount, opts: GuestSpecOptions, dropped: string[]): boolean {
  if (!isBindMount(m)) {
    if (m.type === undefined || KERNEL_FS.has(m.type)) return true;
    dropped.push(`mount ${m.destination} (${m.type}): not a guest kernel file system`);
    return false;
  }
  const src = m.source ?? "";
  if (opts.bindSourceRoots.some((root) => src === root || src.startsWith(root.endsWith("/") ? root : `${root}/`))) return true;
  dropped.push(`bind mount ${src} -> ${m.destination}: the source is not on the shared fs (the host must share it)`);
  return false;
}

function guestNamespaces(list: OciNamespace[], opts: GuestSpecOptions, dropped: string[]): OciNamespace[] {
  const out: OciNamespace[] = [];
  for (const ns of list) {
    // The VM is the pod: its network, hostname (uts) and IPC are the pod's, so a container that
    // was told to join the pod's (a host path) simply shares the guest's.
    if (ns.type === "network") {
      dropped.push("network namespace: containers use the guest's network, which is the pod's");
      continue;
    }
    if (ns.type === "pid") {
      // The host path names a host process's namespace. In the guest: the pod's pause container's
      // when asked to share it, else a fresh one (the guest's own would show the agent).
      out.push(opts.sandboxPidnsPath === undefined ? { type: "pid" } : { type: "pid", path: opts.sandboxPidnsPath });
      continue;
    }
    if (ns.path !== undefined && ns.path !== "") {
      dropped.push(`${ns.type} namespace path ${ns.path}: shares the guest's instead`);
      continue;
    }
    out.push({ type: ns.type });
  }
  if (!out.some((n) => n.type === "mount")) out.push({ type: "mount" });
  return out;
}
