// Packing a vmlinux's segments at 4 KiB: a crafted ELF laid out like the kernel's (segments at
// their address modulo 2 MiB, a PT_NOTE inside the first one, NOBITS .bss, .shstrtab after the
// segments). What a loader reads through the program headers must be byte-identical afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PACKED_ALIGN, packElfSegments } from "../../src/guest/kernel/elf-pack.js";
import { isKataError } from "../../src/util/errors.js";

const MiB = 1 << 20;

interface Seg {
  type: number;
  offset: number;
  vaddr: number;
  size: number;
  memsz?: number;
}
interface Sec {
  name: string;
  type: number;
  addr: number;
  offset: number;
  size: number;
  align: number;
}

function pattern(buf: Buffer, at: number, size: number, seed: number): void {
  for (let i = 0; i < size; i++) buf[at + i] = (i * 131 + seed * 7 + (i >> 9)) & 0xff;
}

/** An ELF64 LE executable with the given program headers, sections and string table. */
function craftElf(segs: Seg[], secs: Sec[], shstrtabAt: number): Buffer {
  const names = Buffer.from(`\0${secs.map((s) => s.name).join("\0")}\0.shstrtab\0`, "latin1");
  const shoff = shstrtabAt + names.length + 8 - ((shstrtabAt + names.length) % 8);
  const shnum = secs.length + 2;
  const elf = Buffer.alloc(shoff + shnum * 64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(elf, 0);
  elf.writeUInt16LE(2, 0x10); // ET_EXEC
  elf.writeUInt16LE(62, 0x12); // x86_64
  elf.writeUInt32LE(1, 0x14);
  elf.writeBigUInt64LE(0x1000000n, 0x18);
  elf.writeBigUInt64LE(64n, 0x20);
  elf.writeBigUInt64LE(BigInt(shoff), 0x28);
  elf.writeUInt16LE(64, 0x34);
  elf.writeUInt16LE(56, 0x36);
  elf.writeUInt16LE(segs.length, 0x38);
  elf.writeUInt16LE(64, 0x3a);
  elf.writeUInt16LE(shnum, 0x3c);
  elf.writeUInt16LE(shnum - 1, 0x3e);
  segs.forEach((s, i) => {
    const at = 64 + i * 56;
    elf.writeUInt32LE(s.type, at);
    elf.writeUInt32LE(5, at + 4);
    elf.writeBigUInt64LE(BigInt(s.offset), at + 8);
    elf.writeBigUInt64LE(BigInt(s.vaddr), at + 16);
    elf.writeBigUInt64LE(BigInt(s.vaddr), at + 24);
    elf.writeBigUInt64LE(BigInt(s.size), at + 32);
    elf.writeBigUInt64LE(BigInt(s.memsz ?? s.size), at + 40);
    elf.writeBigUInt64LE(BigInt(s.type === 1 ? 2 * MiB : 4), at + 48);
    if (s.type === 1) pattern(elf, s.offset, s.size, i + 1);
  });
  names.copy(elf, shstrtabAt);
  let nameAt = 1;
  [...secs, { name: ".shstrtab", type: 3, addr: 0, offset: shstrtabAt, size: names.length, align: 1 }].forEach((s, i) => {
    const at = shoff + (i + 1) * 64;
    elf.writeUInt32LE(nameAt, at);
    nameAt += s.name.length + 1;
    elf.writeUInt32LE(s.type, at + 4);
    elf.writeBigUInt64LE(BigInt(s.addr), at + 16);
    elf.writeBigUInt64LE(BigInt(s.offset), at + 24);
    elf.writeBigUInt64LE(BigInt(s.size), at + 32);
    elf.writeBigUInt64LE(BigInt(s.align), at + 48);
  });
  return elf;
}

function programHeaders(elf: Buffer): Array<{ type: number; offset: number; vaddr: number; size: number; align: number }> {
  const n = elf.readUInt16LE(0x38);
  return Array.from({ length: n }, (_, i) => {
    const at = 64 + i * 56;
    return {
      type: elf.readUInt32LE(at),
      offset: Number(elf.readBigUInt64LE(at + 8)),
      vaddr: Number(elf.readBigUInt64LE(at + 16)),
      size: Number(elf.readBigUInt64LE(at + 32)),
      align: Number(elf.readBigUInt64LE(at + 48)),
    };
  });
}

function sections(elf: Buffer): Array<{ type: number; offset: number; size: number }> {
  const shoff = Number(elf.readBigUInt64LE(0x28));
  return Array.from({ length: elf.readUInt16LE(0x3c) }, (_, i) => ({
    type: elf.readUInt32LE(shoff + i * 64 + 4),
    offset: Number(elf.readBigUInt64LE(shoff + i * 64 + 24)),
    size: Number(elf.readBigUInt64LE(shoff + i * 64 + 32)),
  }));
}

const VBASE = 0xffffffff81000000;
/** Like the kernel: text at 2 MiB, data at the next 2 MiB page, a note inside the text segment. */
function kernelLike(): Buffer {
  const segs: Seg[] = [
    { type: 1, offset: 2 * MiB, vaddr: VBASE, size: 0x5edf4 },
    { type: 1, offset: 4 * MiB, vaddr: VBASE + 2 * MiB, size: 0x31f00 },
    { type: 1, offset: 6 * MiB + 0x42000, vaddr: VBASE + 4 * MiB + 0x42000, size: 0xc300, memsz: 0x2e400 },
    { type: 4, offset: 2 * MiB + 0x5ed88, vaddr: VBASE + 0x5ed88, size: 0x6c },
  ];
  const secs: Sec[] = [
    { name: ".text", type: 1, addr: VBASE, offset: 2 * MiB, size: 0x5ed88, align: 64 },
    { name: ".notes", type: 7, addr: VBASE + 0x5ed88, offset: 2 * MiB + 0x5ed88, size: 0x6c, align: 4 },
    { name: ".data", type: 1, addr: VBASE + 2 * MiB, offset: 4 * MiB, size: 0x31f00, align: 4096 },
    { name: ".init", type: 1, addr: VBASE + 4 * MiB + 0x42000, offset: 6 * MiB + 0x42000, size: 0xc300, align: 16 },
    { name: ".bss", type: 8, addr: VBASE + 4 * MiB + 0x4e300, offset: 6 * MiB + 0x4e300, size: 0x22100, align: 4096 },
  ];
  return craftElf(segs, secs, 6 * MiB + 0x4e300);
}

void test("packing moves every segment next to the previous one at 4 KiB alignment, bytes unchanged", () => {
  const elf = kernelLike();
  const packed = packElfSegments(elf);
  assert.ok(packed.length < elf.length - 5 * MiB, `packed ${packed.length} bytes, original ${elf.length}`);
  const before = programHeaders(elf);
  const after = programHeaders(packed);
  assert.equal(after.length, before.length);
  for (const [i, a] of after.entries()) {
    const b = before[i]!;
    assert.equal(a.type, b.type);
    assert.equal(a.vaddr, b.vaddr, "addresses stay");
    assert.equal(a.size, b.size);
    assert.deepEqual(packed.subarray(a.offset, a.offset + a.size), elf.subarray(b.offset, b.offset + b.size), `segment ${i}: same bytes`);
    if (a.type === 1) {
      assert.equal(a.align, PACKED_ALIGN);
      assert.equal(a.offset % PACKED_ALIGN, a.vaddr % PACKED_ALIGN, `segment ${i}: offset congruent to its address`);
    }
  }
  assert.equal(after[0]!.offset, PACKED_ALIGN, "the first segment follows the headers");
  const secBefore = sections(elf);
  const secAfter = sections(packed);
  for (const [i, s] of secAfter.entries()) {
    if (s.type === 8 || s.size === 0) continue;
    const b = secBefore[i]!;
    assert.deepEqual(packed.subarray(s.offset, s.offset + s.size), elf.subarray(b.offset, b.offset + b.size), `section ${i}: same bytes`);
  }
});

void test("binutils reads the packed file without complaint and sees the same segments", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-elfpack-"));
  try {
    await writeFile(join(dir, "vmlinux"), packElfSegments(kernelLike()));
    const out = execFileSync("readelf", ["-lSW", join(dir, "vmlinux")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    assert.doesNotMatch(out, /warning|error/i);
    assert.match(out, /\.notes/);
    assert.match(out, /LOAD\s+0x001000 0xffffffff81000000/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("packing an already packed file changes nothing", () => {
  const once = packElfSegments(kernelLike());
  assert.deepEqual(packElfSegments(once), once);
});

void test("what is not a packable ELF is refused with INVALID_ARGUMENT", () => {
  assert.throws(() => packElfSegments(Buffer.from("MZ not an elf at all, just some bytes of text padding padding padding")), (e) => isKataError(e, "INVALID_ARGUMENT") && /not an ELF/.test(e.message));
  const elf32 = kernelLike();
  elf32[4] = 1;
  assert.throws(() => packElfSegments(elf32), (e) => isKataError(e, "INVALID_ARGUMENT") && /64-bit little-endian/.test(e.message));
  // A note outside every loadable segment cannot be moved along with one.
  const stray = kernelLike();
  stray.writeBigUInt64LE(BigInt(0x100), 64 + 3 * 56 + 8);
  assert.throws(() => packElfSegments(stray), (e) => isKataError(e, "INVALID_ARGUMENT") && /outside every loadable segment/.test(e.message));
});
