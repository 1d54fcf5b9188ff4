// A VMM's memory from /proc/<pid>/smaps: the whole process (smaps_rollup) and single mappings.
import { readFile } from "node:fs/promises";

export async function smapsRollup(pid: number): Promise<{ rssKiB: number; pssKiB: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { rssKiB: field("Rss"), pssKiB: field("Pss") };
}

/** `field` (Rss, Pss) in KiB of the first mapping of exactly `sizeKiB`, optionally only one that names `path`. */
async function mappingFieldKiB(field: "Rss" | "Pss", pid: number, sizeKiB: number, path?: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps`, "utf8").catch(() => "");
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    if (path !== undefined && !(block.split("\n")[0] ?? "").includes(path)) continue;
    if (Number(/^Size:\s+(\d+) kB/m.exec(block)?.[1]) === sizeKiB) return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(block)?.[1] ?? NaN);
  }
  return NaN;
}

/** Rss (KiB) of the first mapping of exactly `sizeKiB`, optionally only one that names `path`. */
export function mappingResidentKiB(pid: number, sizeKiB: number, path?: string): Promise<number> {
  return mappingFieldKiB("Rss", pid, sizeKiB, path);
}

/** Pss (KiB) of that mapping: a file's pages mapped by N processes count 1/N in each. */
export function mappingPssKiB(pid: number, sizeKiB: number, path?: string): Promise<number> {
  return mappingFieldKiB("Pss", pid, sizeKiB, path);
}

/**
 * The name QEMU gives its TCG code buffer when it is a memfd (`-accel tcg,split-wx=on`): mapped
 * twice, read-write and read-execute, so each page counts half in each mapping's PSS.
 */
const TCG_JIT_MEMFD = "/memfd:tcg-jit";

/**
 * QEMU's TCG code buffer when it is a memfd (split-wx): its PSS (KiB, both mappings together) and
 * its size (KiB, the read-write mapping: what it holds again once the guest has run enough code);
 * undefined when QEMU has no such mapping (an anonymous buffer, KVM, or the process is gone).
 */
export async function tcgJitMemfd(pid: number): Promise<{ pssKiB: number; bufferKiB: number } | undefined> {
  const text = await readFile(`/proc/${pid}/smaps`, "utf8").catch(() => "");
  let found = false;
  let pssKiB = 0;
  let bufferKiB = 0;
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = block.split("\n")[0] ?? "";
    if (!header.includes(TCG_JIT_MEMFD)) continue;
    found = true;
    pssKiB += Number(/^Pss:\s+(\d+) kB/m.exec(block)?.[1] ?? 0);
    if (header.split(/\s+/)[1]?.startsWith("rw")) bufferKiB += Number(/^Size:\s+(\d+) kB/m.exec(block)?.[1] ?? 0);
  }
  return found ? { pssKiB, bufferKiB } : undefined;
}

/** Where a VMM's PSS goes, in KiB, by kind of mapping (see smapsBreakdown). */
export interface SmapsBreakdown {
  /** The guest-RAM mapping (memfd, QEMU's unlinked file on the huge-page tmpfs, or anonymous; exactly the guest's size). */
  guestRam: number;
  /** TCG's code buffer: the anonymous mapping of tb-size (less a guard page: 65532 KiB for 64 MiB). */
  tcgCode: number;
  /** [heap] and every other anonymous mapping (QEMU's own allocations, thread stacks, TCG data). */
  anon: number;
  /** File mappings: the QEMU binary, shared libraries, the kernel image and anything else on disk. */
  files: number;
  /** The three largest file mappings by PSS, "name=KiB". */
  topFiles: string[];
  /**
   * The three largest of `anon` by PSS, "name=KiB" ("[heap]", or "anon<size in KiB>" for an unnamed
   * mapping: a malloc arena of a thread, the ACPI tables' 2 MiB ROM block, TCG's TLBs).
   */
  topAnon: string[];
}

/**
 * PSS by kind of mapping. `guestRamKiB` and `tcgCodeKiB` are the sizes that identify those two
 * mappings (QEMU maps TCG's code buffer as one anonymous region of tb-size MiB); only touched
 * pages count in PSS, so a large reservation costs nothing until the guest's code fills it.
 */
export async function smapsBreakdown(pid: number, guestRamKiB: number, tcgCodeKiB: number): Promise<SmapsBreakdown> {
  const text = await readFile(`/proc/${pid}/smaps`, "utf8").catch(() => "");
  const out: SmapsBreakdown = { guestRam: 0, tcgCode: 0, anon: 0, files: 0, topFiles: [], topAnon: [] };
  const byFile = new Map<string, number>();
  const anonMappings: [string, number][] = [];
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = block.split("\n")[0] ?? "";
    const fields = header.trim().split(/\s+/);
    const name = fields.slice(5).join(" ");
    const size = Number(/^Size:\s+(\d+) kB/m.exec(block)?.[1] ?? 0);
    const pss = Number(/^Pss:\s+(\d+) kB/m.exec(block)?.[1] ?? 0);
    const ramFile = name.startsWith("/memfd:") || /\/qemu_back_mem\./.test(name);
    if (name.startsWith(TCG_JIT_MEMFD)) out.tcgCode += pss;
    else if (size === guestRamKiB && (name === "" || ramFile)) out.guestRam += pss;
    else if (name === "" && tcgCodeKiB > 0 && Math.abs(size - tcgCodeKiB) <= 8) out.tcgCode += pss;
    else if (name === "" || name.startsWith("[") || name.startsWith("/memfd:")) {
      out.anon += pss;
      anonMappings.push([name === "" ? `anon${size}` : name, pss]);
    }
    else {
      out.files += pss;
      const base = name.split("/").pop() ?? name;
      byFile.set(base, (byFile.get(base) ?? 0) + pss);
    }
  }
  const top3 = (xs: [string, number][]): string[] => xs.sort((a, b) => b[1] - a[1]).slice(0, 3).map(([n, k]) => `${n}=${k}`);
  out.topFiles = top3([...byFile]);
  out.topAnon = top3(anonMappings);
  return out;
}
