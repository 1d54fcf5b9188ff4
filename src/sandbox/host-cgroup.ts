// Host cgroup placement for a pod's VM, in the sandbox's cgroup (the OCI spec's linux.cgroupsPath,
// under the pod cgroup kubelet sized with PodOverhead), so the whole VM is charged to the pod, as
// Kata does with sandbox_cgroup_only: either the per-pod shim moves itself there (joinCgroup) before
// it starts virtiofsd and QEMU, so they inherit it, or the cgroup is only made (makeCgroup) and they
// start in its dirs (src/util/start-in-cgroups.ts). Works on cgroup v1, v2 and hybrid hosts, with cgroupfs paths ("/a/b") and
// systemd-driver paths ("slice:prefix:name", placed where systemd would put that scope; the
// directories are made directly, not through systemd's D-Bus API).
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

interface Hierarchy {
  /** Where it is mounted, e.g. /sys/fs/cgroup/memory or /sys/fs/cgroup/unified. */
  mount: string;
  /** Key into /proc/<pid>/cgroup: the hierarchy's comma-joined controllers, or "" for v2. */
  key: string;
  cpuset: boolean;
}

export interface MadeCgroup {
  /** The cgroup directories, one per hierarchy. */
  dirs: string[];
  /**
   * Remove the directories this call created, innermost first. One still holding a process stays;
   * with `busyWaitMs`, the cgroup itself, while busy (a killed process not yet gone), is tried
   * again for up to that long (its parents once: they may hold other cgroups by now).
   */
  remove(busyWaitMs?: number): Promise<void>;
}

export interface JoinedCgroup {
  /** The cgroup directories the process was moved into, one per hierarchy. */
  dirs: string[];
  /** Move the process back where it was and remove the directories this join created. */
  release(): Promise<void>;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

let hierarchiesRead: Promise<Hierarchy[]> | undefined;

/**
 * Mounted cgroup hierarchies (one mount each; bind mounts of the same hierarchy are skipped), read
 * once per process: a node's cgroup mounts do not change while a shim or the pool daemon runs, and
 * /proc/self/mountinfo is slow to read on a busy node (1,176 lines here: 12-47 ms, paid again on
 * the pod start's path by adoption's cgroup move after the shim's own join). A failed read is not kept.
 */
export function cgroupHierarchies(): Promise<Hierarchy[]> {
  hierarchiesRead ??= readCgroupHierarchies().catch((err: unknown) => {
    hierarchiesRead = undefined;
    throw err;
  });
  return hierarchiesRead;
}

async function readCgroupHierarchies(): Promise<Hierarchy[]> {
  const out = new Map<string, Hierarchy>();
  for (const line of (await readFile("/proc/self/mountinfo", "utf8")).split("\n")) {
    const [pre, post] = line.split(" - ");
    if (pre === undefined || post === undefined) continue;
    const [fstype, , superOpts = ""] = post.split(" ");
    const fields = pre.split(" ");
    if ((fields[3] ?? "") !== "/") continue; // a bind mount of a sub-cgroup, not the hierarchy root
    const mount = unescape(fields[4] ?? "");
    if (fstype === "cgroup2") {
      if (!out.has("")) out.set("", { mount, key: "", cpuset: false });
    } else if (fstype === "cgroup") {
      const opts = superOpts.split(",");
      const known = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"];
      const ctrls = opts.filter((o) => known.includes(o) || o.startsWith("name="));
      const key = ctrls.join(",");
      if (key !== "" && !out.has(key)) out.set(key, { mount, key, cpuset: ctrls.includes("cpuset") });
    }
  }
  return [...out.values()];
}

/** /proc/<pid>/cgroup as hierarchy key -> path. */
async function currentCgroups(pid: number | "self"): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const line of (await readFile(`/proc/${pid}/cgroup`, "utf8")).split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) map.set(m[1] as string, m[2] as string);
  }
  return map;
}

/** Create `dir` and missing parents below `mount`; returns the created ones, outermost first. */
async function mkdirs(mount: string, dir: string, cpuset: boolean): Promise<string[]> {
  const missing: string[] = [];
  for (let d = dir; d !== mount && d.startsWith(`${mount}/`); d = dirname(d)) {
    const exists = await readFile(join(d, "cgroup.procs")).then(
      () => true,
      () => false,
    );
    if (exists) break;
    missing.unshift(d);
  }
  for (const d of missing) {
    await mkdir(d);
    // A new v1 cpuset cgroup starts with no CPUs or memory nodes, and then takes no tasks.
    if (cpuset) {
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        const own = (await readFile(join(d, f), "utf8")).trim();
        if (own === "") await writeFile(join(d, f), await readFile(join(dirname(d), f), "utf8"));
      }
    }
  }
  return missing;
}

export function isCgroupfsPath(cgroupsPath: string): boolean {
  return cgroupsPath.startsWith("/") && !cgroupsPath.includes("..");
}

const sliceName = /^[A-Za-z0-9_.\\:-]+\.slice$/;
const unitPart = /^[A-Za-z0-9_.\\:-]*$/;

/**
 * The cgroupfs directory an OCI linux.cgroupsPath stands for. A cgroupfs path ("/a/b") is itself.
 * A systemd-driver path ("slice:prefix:name", what kubelet's systemd cgroup driver gives through
 * containerd) is where systemd puts that unit, as runc's systemd driver does it: the slice's
 * dashes nest ("kubepods-besteffort-pod1.slice" -> /kubepods.slice/kubepods-besteffort.slice/
 * kubepods-besteffort-pod1.slice), the scope is "<prefix>-<name>.scope". Undefined when the
 * path is neither (nothing is placed then).
 */
export function cgroupfsPath(cgroupsPath: string): string | undefined {
  if (isCgroupfsPath(cgroupsPath)) return cgroupsPath;
  const parts = cgroupsPath.split(":");
  if (parts.length !== 3) return undefined;
  const [slice = "", prefix = "", name = ""] = parts;
  if (name === "" || !unitPart.test(prefix) || !unitPart.test(name) || name.includes("..") || prefix.includes("..")) return undefined;
  let dir = "";
  if (slice !== "" && slice !== "-.slice") {
    if (!sliceName.test(slice)) return undefined;
    const words = slice.slice(0, -".slice".length).split("-");
    if (words.some((w) => w === "")) return undefined; // "a--b.slice", "-a.slice": systemd refuses them too
    for (let i = 1; i <= words.length; i++) dir += `/${words.slice(0, i).join("-")}.slice`;
  }
  const unit = name.endsWith(".slice") ? name : `${prefix === "" ? "" : `${prefix}-`}${name}.scope`;
  return `${dir}/${unit}`;
}

/** rmdir, tried again while the cgroup is busy, until `deadline` (ms since the epoch). */
async function rmdirCgroup(dir: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EBUSY" || Date.now() >= deadline) return;
      await sleep(20);
    }
  }
}

/** Make `cgroupsPath` (a cgroupfs path) and missing parents in every mounted hierarchy; nothing joins it. */
export async function makeCgroup(cgroupsPath: string): Promise<MadeCgroup> {
  const hierarchies = await cgroupHierarchies();
  const dirs = hierarchies.map((h) => join(h.mount, cgroupsPath));
  const created: string[] = [];
  const remove = async (busyWaitMs = 0): Promise<void> => {
    // Innermost first; a cgroup someone else still uses stays (rmdir fails with EBUSY).
    // Only the cgroup itself waits: a parent it made may hold other pods' cgroups by now.
    const deadline = Date.now() + busyWaitMs;
    for (const d of created.splice(0).sort((a, b) => b.length - a.length)) await rmdirCgroup(d, dirs.includes(d) ? deadline : 0);
  };
  try {
    for (const h of hierarchies) created.push(...(await mkdirs(h.mount, join(h.mount, cgroupsPath), h.cpuset)));
  } catch (err) {
    await remove();
    throw err;
  }
  return { dirs, remove };
}

/** Move `pid` (default: this process) into `cgroupsPath` in every mounted hierarchy. */
export async function joinCgroup(cgroupsPath: string, pid: number = process.pid): Promise<JoinedCgroup> {
  const hierarchies = await cgroupHierarchies();
  const original = await currentCgroups(pid);
  const made = await makeCgroup(cgroupsPath);
  const moved: Array<{ h: Hierarchy; from: string }> = [];
  const release = async (): Promise<void> => {
    for (const { h, from } of moved.splice(0)) {
      await writeFile(join(h.mount, from, "cgroup.procs"), String(pid)).catch(() => undefined);
    }
    await made.remove();
  };
  try {
    for (const h of hierarchies) {
      await writeFile(join(h.mount, cgroupsPath, "cgroup.procs"), String(pid));
      moved.push({ h, from: original.get(h.key) ?? "/" });
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { dirs: made.dirs, release };
}

/** Which cgroup directories hold `pid` (for checks and tests): hierarchy mount + path. */
export async function cgroupDirsOf(pid: number): Promise<string[]> {
  const cur = await currentCgroups(pid);
  return (await cgroupHierarchies()).flatMap((h) => {
    const p = cur.get(h.key);
    return p === undefined ? [] : [join(h.mount, p)];
  });
}

/**
 * cgroupDirsOf in two parts: the hierarchies that set how much CPU a process gets (cgroup v2's, v1's
 * `cpu` controller) and the others (memory, pids, ...: accounting and limits).
 */
export async function cgroupDirsByCpuOf(pid: number): Promise<{ cpu: string[]; other: string[] }> {
  const cur = await currentCgroups(pid);
  const out = { cpu: [] as string[], other: [] as string[] };
  for (const h of await cgroupHierarchies()) {
    const p = cur.get(h.key);
    if (p !== undefined) (h.key === "" || h.key.split(",").includes("cpu") ? out.cpu : out.other).push(join(h.mount, p));
  }
  return out;
}

/**
 * `dirs` (cgroup directories, e.g. a pod's from makeCgroup) split as cgroupDirsByCpuOf splits a
 * process's; a dir under no mounted hierarchy counts as "other".
 */
export async function cgroupDirsByCpu(dirs: readonly string[]): Promise<{ cpu: string[]; other: string[] }> {
  const hierarchies = await cgroupHierarchies();
  const out = { cpu: [] as string[], other: [] as string[] };
  for (const d of dirs) {
    const h = hierarchies.find((x) => d === x.mount || d.startsWith(`${x.mount}/`));
    (h !== undefined && (h.key === "" || h.key.split(",").includes("cpu")) ? out.cpu : out.other).push(d);
  }
  return out;
}

/**
 * Remove the cgroup at `cgroupsPath` (the leaf only) in every hierarchy, for a pod whose shim died
 * before it could release() it. Only empty cgroups can go; busy ones stay.
 */
export async function removeCgroup(cgroupsPath: string): Promise<void> {
  const dir = cgroupfsPath(cgroupsPath);
  if (dir === undefined || dir === "/") return;
  for (const h of await cgroupHierarchies()) await rmdir(join(h.mount, dir)).catch(() => undefined);
}
