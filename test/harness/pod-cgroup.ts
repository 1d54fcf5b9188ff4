// A kubelet-like pod cgroup for tests and benches: kubelet (cgroupfs driver) makes one cgroup per
// pod under kubepods, with memory limit = the sum of its containers' limits + the RuntimeClass's
// overhead.podFixed, and hands it to the CRI as the pod's cgroupParent. containerd then puts the
// sandbox at <parent>/<sandbox id> (where the kata-ts shim moves itself, so QEMU and virtiofsd are
// charged there: src/shim/pod-cgroup.ts) and runc's containers at <parent>/<container id>. Here the
// parent is made at the root of the memory hierarchy (cgroup v1 `memory` or v2), the limit written,
// and its memory figures and OOM kills read back; remove() takes the parent out of every hierarchy
// once the pods in it are gone (the shim and runc create it in the other hierarchies).
import { randomBytes } from "node:crypto";
import { mkdir, readFile, readdir, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cgroupHierarchies } from "../../src/sandbox/host-cgroup.js";
import { KataError } from "../../src/util/errors.js";

export interface CgroupMemory {
  usageBytes: number;
  /** Highest usage since the cgroup was made (v1 memory.max_usage_in_bytes, v2 memory.peak). */
  peakBytes: number;
  limitBytes: number;
  /** Processes the kernel OOM-killed in this cgroup (v1 memory.oom_control, v2 memory.events oom_kill). */
  oomKills: number;
  /** Times the limit was hit (v1 memory.failcnt; v2 memory.events max). */
  limitHits: number;
  /** What the usage is made of, MiB: anonymous, shmem (guest RAM is a memfd), page cache, mapped files. */
  byKindMiB: { anon: number; shmem: number; file: number; fileMapped: number };
}

export interface PodCgroup {
  /** The cgroupParent to put on the PodSandboxConfig (a cgroupfs path). */
  parent: string;
  limitBytes: number;
  /** The pod cgroup's own figures (it holds the sandbox's and the containers' cgroups). */
  memory(): Promise<CgroupMemory>;
  /** The figures of the cgroup the sandbox (kata-ts: shim, QEMU, virtiofsd) runs in. */
  sandboxMemory(sandboxId: string): Promise<CgroupMemory>;
  /** Removes the pod cgroup (and anything left below it) from every hierarchy; fails if busy. */
  remove(): Promise<void>;
}

const MiB = 1024 * 1024;

interface MemoryHierarchy {
  mount: string;
  v2: boolean;
}

async function memoryHierarchy(): Promise<MemoryHierarchy> {
  const all = await cgroupHierarchies();
  const v1 = all.find((h) => h.key.split(",").includes("memory"));
  if (v1 !== undefined) return { mount: v1.mount, v2: false };
  const v2 = all.find((h) => h.key === "");
  if (v2 !== undefined && (await readFile(join(v2.mount, "cgroup.controllers"), "utf8").catch(() => "")).split(/\s+/).includes("memory")) {
    return { mount: v2.mount, v2: true };
  }
  throw new KataError("FAILED_PRECONDITION", "no cgroup hierarchy has the memory controller: a pod cgroup with a memory limit cannot be made here");
}

const readNumber = async (path: string): Promise<number> => {
  const text = (await readFile(path, "utf8")).trim();
  return text === "max" ? Number.POSITIVE_INFINITY : Number(text);
};

/** "key value" lines (memory.stat, memory.events, memory.oom_control) as a map. */
async function keyValues(path: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await readFile(path, "utf8").catch(() => "")).split("\n")) {
    const [k, v] = line.split(" ");
    if (k !== undefined && v !== undefined) out.set(k, Number(v));
  }
  return out;
}

async function readMemory(h: MemoryHierarchy, dir: string): Promise<CgroupMemory> {
  const mib = (n: number | undefined) => +((n ?? 0) / MiB).toFixed(1);
  if (h.v2) {
    const events = await keyValues(join(dir, "memory.events"));
    const stat = await keyValues(join(dir, "memory.stat"));
    return {
      usageBytes: await readNumber(join(dir, "memory.current")),
      peakBytes: await readNumber(join(dir, "memory.peak")).catch(() => Number.NaN), // memory.peak: Linux 5.19+
      limitBytes: await readNumber(join(dir, "memory.max")),
      oomKills: events.get("oom_kill") ?? 0,
      limitHits: events.get("max") ?? 0,
      byKindMiB: { anon: mib(stat.get("anon")), shmem: mib(stat.get("shmem")), file: mib(stat.get("file")), fileMapped: mib(stat.get("file_mapped")) },
    };
  }
  const oom = await keyValues(join(dir, "memory.oom_control"));
  const stat = await keyValues(join(dir, "memory.stat"));
  return {
    usageBytes: await readNumber(join(dir, "memory.usage_in_bytes")),
    peakBytes: await readNumber(join(dir, "memory.max_usage_in_bytes")),
    limitBytes: await readNumber(join(dir, "memory.limit_in_bytes")),
    oomKills: oom.get("oom_kill") ?? 0,
    limitHits: await readNumber(join(dir, "memory.failcnt")),
    // v1 "total_*" include the cgroups below; "rss" is anonymous memory, "cache" includes shmem.
    byKindMiB: { anon: mib(stat.get("total_rss")), shmem: mib(stat.get("total_shmem")), file: mib(stat.get("total_cache")), fileMapped: mib(stat.get("total_mapped_file")) },
  };
}

/** Makes a pod cgroup with `limitBytes` (rounded down to pages by the kernel). */
export async function createPodCgroup(limitBytes: number, name = `kata-ts-kubepods-${randomBytes(4).toString("hex")}`): Promise<PodCgroup> {
  if (!(limitBytes > 0) || !Number.isSafeInteger(limitBytes)) throw new KataError("INVALID_ARGUMENT", `pod cgroup limit ${limitBytes} is not a positive whole number of bytes`);
  const h = await memoryHierarchy();
  const parent = `/${name}`;
  const dir = join(h.mount, parent);
  await mkdir(dir);
  try {
    await writeFile(join(dir, h.v2 ? "memory.max" : "memory.limit_in_bytes"), String(limitBytes));
    // Enable memory below it so the sandbox's and containers' cgroups account memory too (v2).
    if (h.v2) await writeFile(join(dir, "cgroup.subtree_control"), "+memory");
  } catch (err) {
    await rmdir(dir).catch(() => undefined);
    throw err;
  }
  return {
    parent,
    limitBytes,
    memory: () => readMemory(h, dir),
    sandboxMemory: (sandboxId: string) => readMemory(h, join(dir, sandboxId)),
    async remove() {
      const busy: string[] = [];
      for (const hier of await cgroupHierarchies()) {
        const top = join(hier.mount, parent);
        for (const d of (await subtree(top)).sort((a, b) => b.length - a.length)) {
          await rmdir(d).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== "ENOENT") busy.push(`${d} (${err.code ?? err.message})`);
          });
        }
      }
      if (busy.length > 0) throw new KataError("FAILED_PRECONDITION", `pod cgroup still in use: ${busy.join(", ")}`);
    },
  };
}

/** `dir` and every cgroup below it ([] when it does not exist). */
async function subtree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (entries === undefined) return [];
  const out = [dir];
  for (const e of entries) if (e.isDirectory()) out.push(...(await subtree(join(dir, e.name))));
  return out;
}
