// The OCI spec `kata-ts run --rootfs DIR -- CMD` runs: what `crun spec` writes, with the
// caller's command, environment, working directory, user and limits.
import { defaultContainerMounts, defaultMaskedPaths, defaultReadonlyPaths, type OciSpec } from "../protocol/contract/oci.js";

export interface RunSpecOptions {
  args: string[];
  env?: string[];
  cwd?: string;
  uid?: number;
  gid?: number;
  terminal?: boolean;
  hostname?: string;
  /** Container memory limit in bytes (cgroup v2 memory.max in the guest). */
  memoryLimitBytes?: number;
  /** Host directories bind-mounted into the container: [hostPath, containerPath]. */
  volumes?: [string, string][];
  readonlyRootfs?: boolean;
}

const CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

export function runSpec(o: RunSpecOptions): OciSpec {
  const env = o.env ?? [];
  const hasPath = env.some((e) => e.startsWith("PATH="));
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: o.terminal ?? false,
      user: { uid: o.uid ?? 0, gid: o.gid ?? 0 },
      args: o.args,
      env: [...(hasPath ? [] : ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]), ...(o.terminal ? ["TERM=xterm"] : []), ...env],
      cwd: o.cwd ?? "/",
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }], // as `crun spec`; higher needs CAP_SYS_RESOURCE on some hosts
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: o.readonlyRootfs ?? false },
    hostname: o.hostname ?? "kata-ts",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      ...defaultContainerMounts.map((m) => ({ ...m, options: [...(m.options ?? [])] })),
      ...(o.volumes ?? []).map(([src, dst]) => ({ destination: dst, type: "bind", source: src, options: ["rbind", "rw"] })),
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "cgroup" }],
      resources: o.memoryLimitBytes === undefined ? {} : { memory: { limit: o.memoryLimitBytes, swap: o.memoryLimitBytes } },
      maskedPaths: [...defaultMaskedPaths],
      readonlyPaths: [...defaultReadonlyPaths],
    },
  };
}
