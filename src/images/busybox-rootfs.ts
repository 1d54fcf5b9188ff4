// Stages root filesystems made of the host's static busybox: every applet a real hard link (so
// OCI masked paths and exec of /bin/x behave as with a real distro image) plus the few /etc files
// tools expect.
import { chmod, copyFile, link, mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";
import { pathExists } from "../util/fs.js";
import { installBinaryWithLibs } from "../guest/fsutil.js";

export const HOST_BUSYBOX = "/usr/bin/busybox";

/** Applet paths relative to / (e.g. "bin/sh", "usr/bin/env") as the busybox binary lists them. */
export async function busyboxApplets(busybox = HOST_BUSYBOX): Promise<string[]> {
  const { stdout } = await run(busybox, ["--list-full"], { timeoutMs: 10_000 });
  return stdout.split("\n").map((s) => s.trim()).filter((s) => s.length > 0 && !s.startsWith("/") && !s.includes(".."));
}

async function checkStatic(busybox: string): Promise<void> {
  const { stdout } = await run("file", ["-L", busybox], { timeoutMs: 10_000, allowNonZero: true }).catch(() => ({ stdout: "" }));
  // `file` may be missing; then trust the path. A dynamic busybox would fail inside the image.
  if (stdout !== "" && !stdout.includes("statically linked")) {
    throw new KataError("FAILED_PRECONDITION", `${busybox} is not statically linked; install busybox-static`);
  }
}

async function baseTree(root: string, busybox: string): Promise<void> {
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "var", "run"]) {
    await mkdir(join(root, d), { recursive: true });
  }
  await mkdir(join(root, "tmp"));
  await chmod(join(root, "tmp"), 0o1777);
  await copyFile(busybox, join(root, "bin/busybox"));
  await chmod(join(root, "bin/busybox"), 0o755);
  await writeFile(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  await writeFile(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
  await writeFile(join(root, "etc/hostname"), "busybox\n");
  await writeFile(join(root, "etc/nsswitch.conf"), "hosts: files dns\n");
}

/** A busybox userland: /bin/busybox and a hard link per applet. */
export async function stageBusyboxRootfs(root: string, busybox = HOST_BUSYBOX): Promise<void> {
  await checkStatic(busybox);
  await baseTree(root, busybox);
  for (const applet of await busyboxApplets(busybox)) {
    if (applet === "bin/busybox") continue;
    await mkdir(dirname(join(root, applet)), { recursive: true });
    await link(join(root, "bin/busybox"), join(root, applet));
  }
}

/** The host's iptables (legacy and nf_tables flavours) and the libraries and extensions they load. */
const XTABLES_LIBDIR = "/usr/lib/x86_64-linux-gnu/xtables";
const IPTABLES_FLAVOURS: Record<string, string> = { "iptables-legacy": "xtables-legacy-multi", "iptables-nft": "xtables-nft-multi" };

/**
 * Adds iptables to a busybox tree, so tests can check that a privileged container can program
 * the kernel's packet filter: /usr/sbin/iptables-legacy, iptables-nft and iptables (-> nft, the
 * Debian default), with their shared libraries and the xtables extension modules.
 */
export async function addIptables(root: string): Promise<void> {
  for (const top of ["lib", "lib64"]) {
    if (!(await pathExists(join(root, top)))) await symlink(`usr/${top}`, join(root, top));
  }
  for (const [name, multi] of Object.entries(IPTABLES_FLAVOURS)) {
    const host = `/usr/sbin/${multi}`;
    if (!(await pathExists(host))) throw new KataError("FAILED_PRECONDITION", `${host} is missing; install iptables (apt-get install iptables)`);
    await installBinaryWithLibs(root, host);
    await symlink(multi, join(root, "usr/sbin", name));
  }
  await symlink("iptables-nft", join(root, "usr/sbin/iptables"));
  await mkdir(join(root, dirname(XTABLES_LIBDIR)), { recursive: true });
  await run("cp", ["-a", XTABLES_LIBDIR, join(root, dirname(XTABLES_LIBDIR))], { timeoutMs: 60_000 });
}

/** The pause image: only busybox, sh and sleep. */
export async function stagePauseRootfs(root: string, busybox = HOST_BUSYBOX): Promise<void> {
  await checkStatic(busybox);
  await baseTree(root, busybox);
  for (const applet of ["bin/sh", "bin/sleep"]) await link(join(root, "bin/busybox"), join(root, applet));
}

/**
 * The pause process: PID 1 of the pod sleeps until SIGTERM/SIGINT, then exits 0. PID 1 gets no
 * default signal actions, hence the trap; `wait` returns as soon as a trapped signal arrives.
 */
export const PAUSE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done"];
