// A VMM's memory from /proc/<pid>/smaps: the whole process (smaps_rollup) and single mappings.
import { readFile } from "node:fs/promises";

export async function smapsRollup(pid: number): Promise<{ rssKiB: number; pssKiB: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { rssKiB: field("Rss"), pssKiB: field("Pss") };
}

/** Rss (KiB) of the first mapping of exactly `sizeKiB`, optionally only one that names `path`. */
export async function mappingResidentKiB(pid: number, sizeKiB: number, path?: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps`, "utf8").catch(() => "");
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    if (path !== undefined && !(block.split("\n")[0] ?? "").includes(path)) continue;
    if (Number(/^Size:\s+(\d+) kB/m.exec(block)?.[1]) === sizeKiB) return Number(/^Rss:\s+(\d+) kB/m.exec(block)?.[1] ?? NaN);
  }
  return NaN;
}
