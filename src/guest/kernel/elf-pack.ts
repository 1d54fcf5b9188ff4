// Repacking an x86_64 vmlinux's loadable segments at 4 KiB file alignment.
//
// The kernel links with `-z max-page-size=0x200000`, so every PT_LOAD segment sits in the file at
// its address modulo 2 MiB: the first starts at offset 2 MiB and the gaps between segments are up
// to 2 MiB of zeros (about 4.7 MiB of a 20 MiB vmlinux). Nothing maps the file: QEMU's PVH loader
// (and Firecracker's/Cloud Hypervisor's linux-loader) copy each segment's bytes from p_offset to
// p_paddr and find the PVH entry note through its PT_NOTE header. So the segments can move to the
// next 4 KiB boundary that keeps offset and address congruent (mod 4 KiB); the bytes loaded into
// the guest, and where they go, do not change. Section headers move along with their segment.
import { readFile, writeFile } from "node:fs/promises";
import { KataError } from "../../util/errors.js";

export const PACKED_ALIGN = 0x1000;

const PT_LOAD = 1;
const SHT_NOBITS = 8;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;

interface Range {
  offset: number;
  size: number;
  /** The offset's shift: new = old + delta. */
  delta: number;
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new KataError("INVALID_ARGUMENT", `ELF field at ${at} is out of range (${v})`);
  return Number(v);
}

function setU64(buf: Buffer, at: number, v: number): void {
  buf.writeBigUInt64LE(BigInt(v), at);
}

function alignUp(n: number, align: number): number {
  return align <= 1 ? n : Math.ceil(n / align) * align;
}

/** The first offset >= from that is congruent to `like` modulo `align`. */
function congruentAtOrAfter(from: number, like: number, align: number): number {
  const want = like % align;
  const base = from - (from % align) + want;
  return base >= from ? base : base + align;
}

/**
 * Returns the ELF with its PT_LOAD segments packed at PACKED_ALIGN (p_align becomes PACKED_ALIGN);
 * what a loader copies into guest memory is unchanged. Only 64-bit little-endian executables.
 */
export function packElfSegments(elf: Buffer): Buffer {
  if (elf.length < EHDR_SIZE || elf.readUInt32BE(0) !== 0x7f454c46) throw new KataError("INVALID_ARGUMENT", "not an ELF file");
  if (elf[4] !== 2 || elf[5] !== 1) throw new KataError("INVALID_ARGUMENT", "only 64-bit little-endian ELF files can be packed");
  const phoff = u64(elf, 0x20);
  const shoff = u64(elf, 0x28);
  const phnum = elf.readUInt16LE(0x38);
  const shnum = elf.readUInt16LE(0x3c);
  if (elf.readUInt16LE(0x36) !== PHDR_SIZE || (shnum > 0 && elf.readUInt16LE(0x3a) !== SHDR_SIZE)) {
    throw new KataError("INVALID_ARGUMENT", "unexpected ELF program/section header size");
  }
  const headersEnd = phoff + phnum * PHDR_SIZE;
  if (phoff < EHDR_SIZE || headersEnd > elf.length) throw new KataError("INVALID_ARGUMENT", "program headers are outside the file");

  const loads: Range[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * PHDR_SIZE;
    if (elf.readUInt32LE(at) !== PT_LOAD) continue;
    const offset = u64(elf, at + 8);
    const size = u64(elf, at + 32);
    if (offset + size > elf.length) throw new KataError("INVALID_ARGUMENT", `segment ${i} ends past the end of the file`);
    loads.push({ offset, size, delta: 0 });
  }
  if (loads.length === 0) throw new KataError("INVALID_ARGUMENT", "the ELF file has no loadable segment");
  loads.sort((a, b) => a.offset - b.offset);

  if (loads[0]!.offset < headersEnd) throw new KataError("INVALID_ARGUMENT", "a loadable segment overlaps the ELF headers");
  let cursor = headersEnd;
  for (const seg of loads) {
    const at = congruentAtOrAfter(cursor, seg.offset, PACKED_ALIGN);
    seg.delta = at - seg.offset;
    cursor = at + seg.size;
  }
  for (let i = 1; i < loads.length; i++) {
    const prev = loads[i - 1]!;
    if (loads[i]!.offset < prev.offset + prev.size) throw new KataError("INVALID_ARGUMENT", "loadable segments overlap in the file");
  }
  // A file range inside a segment (or empty, at its end) moves with it.
  const segmentOf = (offset: number, size: number): Range | undefined =>
    loads.find((s) => offset >= s.offset && offset + size <= s.offset + s.size && (size > 0 ? offset < s.offset + s.size : true));

  const out = Buffer.alloc(cursor);
  elf.copy(out, 0, 0, headersEnd);
  for (const seg of loads) elf.copy(out, seg.offset + seg.delta, seg.offset, seg.offset + seg.size);

  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * PHDR_SIZE;
    const offset = u64(elf, at + 8);
    const size = u64(elf, at + 32);
    if (elf.readUInt32LE(at) === PT_LOAD) {
      setU64(out, at + 8, offset + segmentOf(offset, size)!.delta);
      setU64(out, at + 48, PACKED_ALIGN);
      continue;
    }
    if (size === 0) continue; // GNU_STACK and the like: no bytes in the file
    const seg = segmentOf(offset, size);
    if (seg === undefined) throw new KataError("INVALID_ARGUMENT", `program header ${i} (type ${elf.readUInt32LE(at)}) lies outside every loadable segment`);
    setU64(out, at + 8, offset + seg.delta);
  }

  if (shnum === 0 || shoff === 0) {
    setU64(out, 0x28, 0);
    return out;
  }
  // Sections outside the segments (.comment, .shstrtab, a symbol table) follow them, then the table.
  const tail: Buffer[] = [];
  let end = cursor;
  const shdrs = Buffer.from(elf.subarray(shoff, shoff + shnum * SHDR_SIZE));
  if (shdrs.length !== shnum * SHDR_SIZE) throw new KataError("INVALID_ARGUMENT", "section headers are outside the file");
  for (let i = 1; i < shnum; i++) {
    const at = i * SHDR_SIZE;
    const offset = u64(shdrs, at + 24);
    const nobits = shdrs.readUInt32LE(at + 4) === SHT_NOBITS;
    const size = nobits ? 0 : u64(shdrs, at + 32);
    const seg = segmentOf(offset, size);
    if (seg !== undefined) {
      setU64(shdrs, at + 24, offset + seg.delta);
    } else if (nobits || size === 0) {
      setU64(shdrs, at + 24, end);
    } else {
      const placed = alignUp(end, Math.max(1, u64(shdrs, at + 48)));
      tail.push(Buffer.alloc(placed - end), elf.subarray(offset, offset + size));
      setU64(shdrs, at + 24, placed);
      end = placed + size;
    }
  }
  const tableAt = alignUp(end, 8);
  tail.push(Buffer.alloc(tableAt - end), shdrs);
  setU64(out, 0x28, tableAt);
  return Buffer.concat([out, ...tail]);
}

/** packElfSegments from one file to another; returns the sizes before and after. */
export async function packElfFile(from: string, to: string): Promise<{ before: number; after: number }> {
  const elf = await readFile(from);
  const packed = packElfSegments(elf);
  await writeFile(to, packed);
  return { before: elf.length, after: packed.length };
}
