// The guest's root filesystem: a read-only erofs image with node + the agent bundle, crun, ip, script,
// busybox and a minimal /etc. Everything writable lives on tmpfs mounted by the guest init.
import { chmod, mkdir, rm, stat, truncate } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { run, tryRun } from "../util/exec.js";
import { pmemAlignment } from "../hypervisor/qemu/args/pmem.js";
import { copyWithMode, exists, installBinaryWithLibs, installHostFile, linkIfAbsent, mirrorUsrMerge, writeNewFile } from "./fsutil.js";
import { AGENT_BUNDLE_PATH, ROOT_INIT_PATH, rootInit } from "./init-scripts.js";
import { BUSYBOX } from "./initramfs.js";

/** socat: the agent's vsock bridge (src/agent/vsock-bridge.ts; Node has no AF_VSOCK). It and the libraries nothing else uses add 7.4 MiB, read only on a VMM that offers vsock. */
export const SOCAT = "/usr/bin/socat";
export const NODE = "/usr/bin/node";
export const CRUN = "/usr/bin/crun";
export const IP = "/usr/sbin/ip";
/** util-linux `script`: gives foreground crun a terminal for tty containers (docs/containers.md). */
export const SCRIPT = "/usr/bin/script";

/** A fixed filesystem UUID and timestamp make the image byte-for-byte reproducible. */
const EROFS_UUID = "6b617461-2d74-7320-6775-657374000001";

const etcFiles: Record<string, string> = {
  passwd: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  group: "root:x:0:\nnogroup:x:65534:\n",
  hosts: "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
  "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
  hostname: "kata-ts\n",
};

export interface RootfsOptions {
  workDir: string;
  agentCode: Uint8Array;
  nodeArgs: readonly string[];
  out: string;
}

export async function stageRootfs(opts: RootfsOptions): Promise<string> {
  const root = join(opts.workDir, "rootfs");
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await mirrorUsrMerge(root);
  for (const d of ["dev", "proc", "sys", "run", "tmp", "root", "etc", "var", "usr/lib/kata-ts", "usr/sbin", "usr/bin", "sys/fs/cgroup"]) {
    await mkdir(join(root, d), { recursive: true });
  }
  await chmod(join(root, "tmp"), 0o1777);
  await chmod(join(root, "root"), 0o700);
  // Writable files the guest fills at run time point into /run (tmpfs).
  await linkIfAbsent("/run", join(root, "var", "run"));
  await linkIfAbsent("/tmp", join(root, "var", "tmp"));
  await linkIfAbsent("/run/resolv.conf", join(root, "etc", "resolv.conf"));
  await linkIfAbsent("/proc/self/mounts", join(root, "etc", "mtab"));
  for (const [name, text] of Object.entries(etcFiles)) await writeNewFile(join(root, "etc", name), text);

  await installNode(root);
  await installBinaryWithLibs(root, SOCAT);
  await installBinaryWithLibs(root, CRUN);
  await installBinaryWithLibs(root, IP);
  await installBinaryWithLibs(root, SCRIPT);
  await installBusybox(root);

  await writeNewFile(join(root, AGENT_BUNDLE_PATH), opts.agentCode);
  await writeNewFile(join(root, ROOT_INIT_PATH), rootInit({ nodeArgs: opts.nodeArgs }), 0o755);
  return root;
}

/** node stripped of its debug info (about 12 MiB less to read from the disk), plus its libraries. */
async function installNode(root: string): Promise<void> {
  await installBinaryWithLibs(root, NODE);
  const dest = join(root, NODE);
  await rm(dest);
  const stripped = await tryRun("strip", ["--strip-all", "-o", dest, NODE], { timeoutMs: 120_000 });
  if (stripped === undefined) await copyWithMode(NODE, dest);
  await chmod(dest, 0o755);
}

/** busybox-static and a symlink per applet, where no real tool of that name is installed. */
async function installBusybox(root: string): Promise<void> {
  await installHostFile(root, BUSYBOX);
  const { stdout } = await run(BUSYBOX, ["--list-full"]);
  for (const applet of stdout.split("\n").filter((l) => l !== "").sort()) {
    // Applet paths are like "bin/sh", "usr/sbin/chroot": put them in the merged /usr.
    const merged = applet.startsWith("usr/") ? applet : `usr/${applet}`;
    const base = merged.split("/").pop() ?? "";
    if (base === "" || base === "busybox") continue;
    const other = merged.startsWith("usr/sbin/") ? `usr/bin/${base}` : `usr/sbin/${base}`;
    if (await exists(join(root, other))) continue;
    await linkIfAbsent(relative(dirname(`/${merged}`), "/usr/bin/busybox"), join(root, merged));
  }
}

/**
 * The erofs image of `stageDir`. -Enoinline_data: every file's data in whole blocks of its own (erofs "flat plain" layout), none
 * packed into the tail of its inode's block. The guest kernel gives DAX only to flat-plain files
 * (erofs_fill_inode in 6.1), so with tail packing node and its libraries were read into the guest's
 * page cache even on a dax=always mount (42 MiB Cached with node running, checked by hand on q35).
 * The image is padded with zeros to a multiple of the device-memory alignment (erofs ignores what
 * follows its last block): the VMM may attach it as virtio-pmem (QEMU q35, the default; Cloud
 * Hypervisor), which maps it in 2 MiB units, and a memory-backend-file cannot outgrow its file.
 */
export async function buildErofs(stageDir: string, out: string): Promise<void> {
  await rm(out, { force: true });
  await run("mkfs.erofs", ["--quiet", "-T0", `-U${EROFS_UUID}`, "--all-root", "-x-1", "-Enoinline_data", out, stageDir], { timeoutMs: 600_000 });
  const size = (await stat(out)).size;
  await truncate(out, Math.ceil(size / pmemAlignment) * pmemAlignment);
}
