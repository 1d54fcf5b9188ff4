// The tmpfs that holds guest RAM in huge pages. A pod's guest RAM must be a shared file (virtiofsd
// maps it), and a memfd gets 4 KiB pages while the host's `shmem_enabled` is `never` (Debian's
// default); a tmpfs mounted with `huge=within_size` gets 2 MiB pages whatever that global says.
// kata-ts mounts it itself on first use and keeps it for the node's life (it holds no files of its
// own: QEMU unlinks each VM's file as soon as it has created it, args/memory.ts). Measured in
// docs/guest.md "Guest RAM in huge pages".
import { mkdir, readFile } from "node:fs/promises";
import { KataError } from "../../util/errors.js";
import { run } from "../../util/exec.js";

/** The tmpfs options: huge pages within the file size, no size or inode cap (as the memfd: the pod's cgroup bounds it). */
export const guestRamMountOptions = "huge=within_size,size=0,nr_inodes=0,mode=0700";
const fsName = "kata-ts-guest-ram";

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mounts at exactly `dir` in /proc/self/mountinfo text, bottom first (the last one is what a path lookup sees). */
export function mountsAt(mountinfo: string, dir: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    const mountPoint = unescapeMountPath(left.split(" ")[4] ?? "");
    if (mountPoint !== dir) continue;
    const [fsType = "", , superOpts = ""] = right.split(" ");
    out.push({ mountPoint, fsType, superOptions: superOpts.split(",") });
  }
  return out;
}

/** Whether a mount gives its files huge pages (`huge=always` or `huge=within_size`). */
export function isHugeTmpfs(m: MountEntry): boolean {
  return m.fsType === "tmpfs" && m.superOptions.some((o) => o === "huge=always" || o === "huge=within_size");
}

const ready = new Map<string, Promise<void>>();

/**
 * Makes sure `dir` is a huge-page tmpfs, mounting one when nothing is mounted there; once per
 * process and dir. Something else mounted at `dir` is refused rather than mounted over.
 */
export function ensureGuestRamDir(dir: string): Promise<void> {
  let p = ready.get(dir);
  if (p === undefined) {
    p = mountGuestRamDir(dir);
    ready.set(dir, p);
    p.catch(() => ready.delete(dir));
  }
  return p;
}

async function mountGuestRamDir(dir: string): Promise<void> {
  const top = async (): Promise<MountEntry | undefined> => mountsAt(await readFile("/proc/self/mountinfo", "utf8"), dir).at(-1);
  let m = await top();
  if (m === undefined) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Two processes mounting at once stack two identical empty mounts: harmless, QEMU uses the top one.
    await run("mount", ["-t", "tmpfs", "-o", guestRamMountOptions, fsName, dir], { timeoutMs: 30_000 }).catch((err: unknown) => {
      throw new KataError(
        "FAILED_PRECONDITION",
        `cannot mount the huge-page tmpfs for guest RAM at ${dir} (${err instanceof Error ? err.message : String(err)}); the host kernel needs transparent huge pages for shmem (CONFIG_TRANSPARENT_HUGEPAGE), or set [hypervisor.qemu] huge_guest_ram = false`,
        { cause: err },
      );
    });
    m = await top();
  }
  if (m === undefined || !isHugeTmpfs(m)) {
    const what = m === undefined ? "nothing is mounted there after mounting it" : `${m.fsType} with ${m.superOptions.join(",")} is mounted there`;
    throw new KataError("FAILED_PRECONDITION", `guest RAM directory ${dir} must be a tmpfs with huge=within_size (or huge=always), but ${what}; unmount it (kata-ts mounts its own), or set [hypervisor.qemu] huge_guest_ram = false`);
  }
}
