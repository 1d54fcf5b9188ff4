// Shared set-up for the agent container manager tests on this host: a busybox-static rootfs with
// real (hard-linked) applets in a temp dir, a crun wrapper, and a manager that uses them.
//
// This host is cgroup v1 "hybrid" with a controller (hugetlb) on the v2 hierarchy, which crun
// refuses ("cgroups in hybrid mode not supported"). The wrapper runs crun in a private mount
// namespace without /sys/fs/cgroup/unified, so crun sees plain v1; with --cgroup-manager=disabled
// it touches no cgroup. The guest (pure cgroup v2) needs none of this.
import { execFileSync } from "node:child_process";
import { chmod, link, mkdir, mkdtemp, rm, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerManager } from "../../src/agent/container/manager.js";
import type { OciSpec } from "../../src/protocol/contract/oci.js";

export interface Fixture {
  dir: string;
  rootfs: string;
  crunRoot: string;
  manager: ContainerManager;
  cleanup(): Promise<void>;
}

export async function makeBusyboxRootfs(rootfs: string): Promise<void> {
  for (const d of ["bin", "proc", "dev", "sys", "tmp", "etc", "root", "data", "home/user"]) await mkdir(join(rootfs, d), { recursive: true });
  await copyFile("/usr/bin/busybox", join(rootfs, "bin/busybox"));
  await chmod(join(rootfs, "bin/busybox"), 0o755);
  const applets = execFileSync("/usr/bin/busybox", ["--list"], { encoding: "utf8" }).split("\n").filter((a) => a !== "" && a !== "busybox");
  for (const a of applets) await link(join(rootfs, "bin/busybox"), join(rootfs, "bin", a));
  await writeFile(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n");
  await writeFile(join(rootfs, "etc/group"), "root:x:0:\nuser:x:1000:\n");
  await chmod(join(rootfs, "tmp"), 0o1777);
}

export async function makeFixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-agent-ct-"));
  const rootfs = join(dir, "rootfs");
  await makeBusyboxRootfs(rootfs);
  const wrapper = join(dir, "crun-wrapper");
  await writeFile(
    wrapper,
    `#!/bin/sh\nexec unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"\n`,
  );
  await chmod(wrapper, 0o755);
  const crunRoot = join(dir, "crun-state");
  const manager = new ContainerManager({
    crun: { path: wrapper, root: crunRoot, cgroupManager: "disabled" },
    tools: { script: "script", stty: "stty" },
    bundleRoot: join(dir, "bundles"),
    cgroupRoot: "/sys/fs/cgroup",
    bindSourceRoots: [dir],
  });
  return {
    dir,
    rootfs,
    crunRoot,
    manager,
    async cleanup() {
      await manager.removeAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A config.json like `crun spec` writes, without cgroup namespace and mount (host is v1). */
export function specFor(args: string[], over: { env?: string[]; cwd?: string; uid?: number; gid?: number; terminal?: boolean } = {}): OciSpec {
  return {
    ociVersion: "1.0.0",
    process: {
      terminal: over.terminal ?? false,
      user: { uid: over.uid ?? 0, gid: over.gid ?? 0 },
      args,
      env: over.env ?? ["PATH=/bin", "TERM=xterm"],
      cwd: over.cwd ?? "/",
      capabilities: {
        bounding: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        effective: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        permitted: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: false },
    hostname: "ctr",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "network", path: "/proc/1/ns/net" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      maskedPaths: ["/proc/kcore", "/sys/firmware"],
      readonlyPaths: ["/proc/sys", "/proc/sysrq-trigger"],
      cgroupsPath: "/host/only/path",
      devices: [{ path: "/dev/host-only", type: "c", major: 1, minor: 3 }],
    },
  };
}

/** Everything a stream gives until EOF. */
export async function drain(read: (len: number) => Promise<{ data: Buffer; eof: boolean }>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const r = await read(256 * 1024);
    parts.push(r.data);
    if (r.eof) return Buffer.concat(parts);
  }
}
