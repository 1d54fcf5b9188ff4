// Extracting the uncompressed ELF vmlinux from an x86 bzImage, so that QEMU microvm can PVH-boot it
// directly (no firmware, no in-guest decompressor: both cost boot time).
//
// x86 boot protocol (Documentation/arch/x86/boot.rst): the real-mode setup is (setup_sects + 1)
// sectors of 512 bytes, setup_sects at 0x1f1 (0 means 4); "HdrS" at 0x202; payload_offset (u32 at
// 0x248) and payload_length (u32 at 0x24c), since protocol 2.08, locate the compressed kernel inside
// the protected-mode part. The compressed stream ends with the uncompressed size as a u32 (the
// kernel's size_append), which the LZ4 legacy decoder would misread as a block header.
import { open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { run } from "../../util/exec.js";
import { KataError } from "../../util/errors.js";

export type PayloadFormat = "lz4" | "gzip" | "zstd" | "xz" | "elf";

export interface BzImageHeader {
  setupSects: number;
  protocolVersion: number;
  /** Absolute offset of the compressed payload in the file. */
  payloadStart: number;
  payloadLength: number;
  format: PayloadFormat;
}

const magics: ReadonlyArray<[PayloadFormat, readonly number[]]> = [
  ["lz4", [0x02, 0x21, 0x4c, 0x18]], // LZ4 legacy frame, what the kernel's lz4 -l writes
  ["gzip", [0x1f, 0x8b]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["elf", [0x7f, 0x45, 0x4c, 0x46]],
];

export function detectFormat(head: Uint8Array): PayloadFormat | undefined {
  return magics.find(([, m]) => m.every((b, i) => head[i] === b))?.[0];
}

export function isElf(head: Uint8Array): boolean {
  return detectFormat(head) === "elf";
}

export function parseBzImageHeader(image: Buffer): BzImageHeader {
  if (image.length < 0x250 || image.toString("latin1", 0x202, 0x206) !== "HdrS") {
    throw new KataError("INVALID_ARGUMENT", "not an x86 bzImage: no HdrS boot header at 0x202");
  }
  const protocolVersion = image.readUInt16LE(0x206);
  if (protocolVersion < 0x208) {
    throw new KataError("INVALID_ARGUMENT", `bzImage boot protocol ${protocolVersion.toString(16)} predates payload_offset (needs 2.08+)`);
  }
  const setupSects = image[0x1f1] || 4;
  const payloadStart = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
  const payloadLength = image.readUInt32LE(0x24c);
  if (payloadStart + payloadLength > image.length) {
    throw new KataError("INVALID_ARGUMENT", `bzImage payload (${payloadStart}+${payloadLength}) runs past the end of the file (${image.length})`);
  }
  const format = detectFormat(image.subarray(payloadStart, payloadStart + 8));
  if (format === undefined) {
    const hex = image.subarray(payloadStart, payloadStart + 8).toString("hex");
    throw new KataError("UNIMPLEMENTED", `unknown bzImage payload compression (magic ${hex})`);
  }
  return { setupSects, protocolVersion, payloadStart, payloadLength, format };
}

/** Decompressor command per format; each reads a file argument and writes stdout to -o/redirect. */
function decompressArgs(format: PayloadFormat, input: string, output: string): [string, string[]] {
  switch (format) {
    case "lz4":
      return ["lz4", ["-d", "-f", "-q", input, output]];
    case "zstd":
      return ["zstd", ["-d", "-f", "-q", input, "-o", output]];
    case "gzip":
    case "xz":
    case "elf":
      throw new KataError("UNIMPLEMENTED", `extracting a ${format} bzImage payload is not implemented (the Debian kernel uses lz4)`);
  }
}

/**
 * Write the ELF vmlinux inside `bzImagePath` to `outPath`. Checks the result's ELF magic and, when
 * the stream carries it, its size against the appended uncompressed length.
 */
export async function extractVmlinux(bzImagePath: string, outPath: string): Promise<BzImageHeader> {
  const image = await readFile(bzImagePath);
  const hdr = parseBzImageHeader(image);
  const payload = image.subarray(hdr.payloadStart, hdr.payloadStart + hdr.payloadLength);
  const expectedSize = payload.readUInt32LE(payload.length - 4);
  const tmp = `${outPath}.payload`;
  try {
    await writeFile(tmp, payload.subarray(0, payload.length - 4));
    const [cmd, args] = decompressArgs(hdr.format, tmp, outPath);
    await run(cmd, args, { timeoutMs: 120_000 });
  } finally {
    await rm(tmp, { force: true });
  }
  const head = Buffer.alloc(4);
  const fh = await open(outPath, "r");
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  if (!isElf(head)) {
    throw new KataError("INTERNAL", `decompressed kernel ${outPath} is not an ELF file (starts with ${head.toString("hex")})`);
  }
  const size = (await stat(outPath)).size;
  if (size !== expectedSize) {
    throw new KataError("INTERNAL", `decompressed kernel is ${size} bytes, the bzImage says ${expectedSize}`);
  }
  return hdr;
}
