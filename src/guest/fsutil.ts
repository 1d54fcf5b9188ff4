// File helpers for staging image trees: copies that keep modes, shared libraries found with ldd,
// and hashing for the manifest.
import { createHash } from "node:crypto";
import { constants as fsConstants, createReadStream } from "node:fs";
import { chmod, copyFile, lstat, lutimes, mkdir, readdir, readlink, realpath, stat, symlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { run } from "../util/exec.js";

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Copy a file keeping its permission bits (fs.copyFile does not). Refuses to replace anything at
 * `to`: staging trees hold symlinks whose targets are guest paths, and following one from the host
 * would write into the host's own /usr.
 */
export async function copyWithMode(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await copyFile(from, to, fsConstants.COPYFILE_EXCL);
  await chmod(to, (await stat(from)).mode & 0o7777);
}

/** Write a new file (never through an existing entry or symlink: O_EXCL). */
export async function writeNewFile(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, data, { flag: "wx", mode });
  await chmod(path, mode);
}

/** Create a symlink, replacing nothing: an existing entry at `path` wins. Prefer relative targets. */
export async function linkIfAbsent(target: string, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  if (await exists(path)) return;
  await symlink(target, path);
}

export async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** The shared libraries an ELF binary loads (absolute paths as ldd names them, interpreter included). */
export function parseLdd(output: string): string[] {
  const libs: string[] = [];
  for (const line of output.split("\n")) {
    const arrow = /=>\s+(\/\S+)\s+\(/.exec(line);
    const bare = /^\s*(\/\S+)\s+\(/.exec(line);
    const path = arrow?.[1] ?? bare?.[1];
    if (path !== undefined) libs.push(path);
  }
  return libs;
}

/**
 * Copy `hostPath` into `root` at its real (symlink-resolved) location, and recreate the name it was
 * reached by as a symlink when that differs (libstdc++.so.6 -> libstdc++.so.6.0.30, /lib64/ld-linux...).
 * The staged tree mirrors the host's merged-/usr layout, so the names resolve the same in the guest.
 */
export async function installHostFile(root: string, hostPath: string): Promise<void> {
  const real = await realpath(hostPath);
  const dest = join(root, real);
  if (!(await exists(dest))) await copyWithMode(real, dest);
  const namedAt = join(await realpath(dirname(hostPath)), basename(hostPath));
  if (namedAt !== real) await linkIfAbsent(relative(dirname(namedAt), real), join(root, namedAt));
}

/** Install a binary and every library ldd lists for it. */
export async function installBinaryWithLibs(root: string, hostPath: string): Promise<string[]> {
  await installHostFile(root, hostPath);
  const { stdout } = await run("ldd", [hostPath], { timeoutMs: 30_000 });
  const libs = parseLdd(stdout);
  for (const lib of libs) await installHostFile(root, lib);
  return libs;
}

/** Recreate the host's top-level merged-/usr symlinks (/bin -> usr/bin, /lib64 -> usr/lib64, ...). */
export async function mirrorUsrMerge(root: string): Promise<void> {
  for (const top of ["bin", "sbin", "lib", "lib64"]) {
    const st = await lstat(`/${top}`).catch(() => undefined);
    if (st?.isSymbolicLink()) await linkIfAbsent(await readlink(`/${top}`), join(root, top));
    else await mkdir(join(root, top), { recursive: true });
  }
}

/** Set every mtime in a tree to `epoch` (for archive formats that record them). */
export async function clampMtimes(root: string, epoch = 0): Promise<void> {
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) await clampMtimes(path, epoch);
    await lutimes(path, epoch, epoch);
  }
  await lutimes(root, epoch, epoch);
}

/** All paths under root, relative ("." first), sorted bytewise: a reproducible archive order. */
export async function listTreeSorted(root: string): Promise<string[]> {
  const out: string[] = ["."];
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(root, rel), { withFileTypes: true })) {
      const child = rel === "." ? entry.name : `${rel}/${entry.name}`;
      out.push(`./${child}`);
      if (entry.isDirectory()) await walk(child);
    }
  };
  await walk(".");
  return out.sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
}
