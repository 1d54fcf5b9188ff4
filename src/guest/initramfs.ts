// The initramfs: busybox-static, the guest's kernel modules and the stage-1 /init. Uncompressed
// newc cpio: QEMU places it in guest memory as is, so skipping gzip saves the guest a decompression
// (measurable under TCG) at the cost of ~2 MiB more host disk.
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../util/exec.js";
import { clampMtimes, copyWithMode, listTreeSorted, writeNewFile } from "./fsutil.js";
import { initramfsInit } from "./init-scripts.js";
import { pruneModules } from "./modules.js";

export const BUSYBOX = "/bin/busybox";

/** Applets stage 1 runs; each becomes /bin/NAME -> busybox. */
const APPLETS = ["sh", "mount", "insmod", "switch_root", "poweroff", "usleep", "cat", "echo", "mkdir"];

export interface InitramfsResult {
  path: string;
  modules: string[];
}

export async function buildInitramfs(opts: { workDir: string; modulesRoot: string; release: string; out: string }): Promise<InitramfsResult> {
  const stage = join(opts.workDir, "initramfs");
  await rm(stage, { recursive: true, force: true });
  for (const d of ["bin", "dev", "proc", "sys", "newroot"]) await mkdir(join(stage, d), { recursive: true });
  await copyWithMode(BUSYBOX, join(stage, "bin", "busybox"));
  for (const applet of APPLETS) await run("ln", ["-s", "busybox", join(stage, "bin", applet)]);
  // The kernel opens /dev/console for /init before anything is mounted.
  await run("mknod", ["-m", "600", join(stage, "dev", "console"), "c", "5", "1"]);
  const { order } = await pruneModules(opts.modulesRoot, stage, opts.release);
  await writeNewFile(join(stage, "init"), initramfsInit(opts.release), 0o755);
  await clampMtimes(stage);
  const files = await listTreeSorted(stage);
  await rm(opts.out, { force: true });
  await run("cpio", ["--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0", "-O", opts.out], {
    cwd: stage,
    input: files.map((f) => `${f}\n`).join(""),
    timeoutMs: 120_000,
  });
  return { path: opts.out, modules: order };
}
