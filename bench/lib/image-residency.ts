// Which files of the erofs root image a VMM holds resident in its DAX mapping (virtio-pmem): the
// present bits of that mapping from /proc/<pid>/pagemap, attributed to files by their extents in
// the image (dump.erofs). A guest that executes node from the image makes QEMU fault those pages
// into its own mapping; they are the host's page cache, shared by every VM, but a single VM's PSS
// counts them whole. Needs root (pagemap) and erofs-utils (dump.erofs, installed with mkfs.erofs).
import { open, readFile } from "node:fs/promises";
import { run } from "../../src/util/exec.js";

const PAGE = 4096;

/** A regular file's data in the image: [start, end) byte offsets. */
export interface ImageExtent {
  path: string;
  start: number;
  end: number;
}

async function dumpErofs(image: string, args: string[]): Promise<string> {
  return (await run("dump.erofs", [...args, image], { timeoutMs: 30_000 })).stdout;
}

/** Every regular file's extents in an erofs image (walks the tree: one dump.erofs per entry). */
export async function erofsExtents(image: string): Promise<ImageExtent[]> {
  const out: ImageExtent[] = [];
  const walk = async (dir: string): Promise<void> => {
    const listing = await dumpErofs(image, [`--path=${dir}`, "--ls"]);
    for (const line of listing.split("\n")) {
      // "       NID TYPE  FILENAME": type 1 regular file, 2 directory (erofs file types).
      const m = /^\s+\d+\s+(\d+)\s+(.+)$/.exec(line);
      if (m === null || m[2] === "." || m[2] === "..") continue;
      const path = `${dir === "/" ? "" : dir}/${m[2]}`;
      if (m[1] === "2") await walk(path);
      else if (m[1] === "1") {
        const info = await dumpErofs(image, ["-e", `--path=${path}`]);
        // " Ext:   logical offset   |  length :     physical offset    |  length"
        for (const e of info.matchAll(/^\s+\d+:\s+\d+\.\.\s*\d+\s*\|\s*(\d+)\s*:\s*(\d+)\.\./gm)) {
          const start = Number(e[2]);
          out.push({ path, start, end: start + Number(e[1]) });
        }
      }
    }
  };
  await walk("/");
  return out;
}

/** Resident KiB of `image` in `pid`'s mapping of it, in total and per file (largest first). */
export async function imageResidency(pid: number, image: string, extents: readonly ImageExtent[]): Promise<{ totalKiB: number; byFile: [string, number][] }> {
  const maps = await readFile(`/proc/${pid}/maps`, "utf8");
  const line = maps.split("\n").find((l) => l.endsWith(` ${image}`));
  if (line === undefined) return { totalKiB: 0, byFile: [] };
  const [from, to] = (line.split(" ")[0] ?? "").split("-").map((x) => parseInt(x, 16)) as [number, number];
  const fileOffset = parseInt(line.split(/\s+/)[2] ?? "0", 16);
  const pages = (to - from) / PAGE;
  const buf = Buffer.alloc(pages * 8);
  const fh = await open(`/proc/${pid}/pagemap`, "r");
  try {
    await fh.read(buf, 0, buf.length, (from / PAGE) * 8);
  } finally {
    await fh.close();
  }
  const owner = new Array<string | undefined>(pages);
  for (const e of extents) {
    for (let p = Math.floor((e.start - fileOffset) / PAGE); p < Math.ceil((e.end - fileOffset) / PAGE); p++) if (p >= 0 && p < pages) owner[p] = e.path;
  }
  const byFile = new Map<string, number>();
  let total = 0;
  for (let p = 0; p < pages; p++) {
    if ((buf.readBigUInt64LE(p * 8) >> 63n) === 0n) continue; // bit 63: page present
    total += PAGE / 1024;
    const name = owner[p] ?? "(metadata)";
    byFile.set(name, (byFile.get(name) ?? 0) + PAGE / 1024);
  }
  return { totalKiB: total, byFile: [...byFile].sort((a, b) => b[1] - a[1]) };
}
