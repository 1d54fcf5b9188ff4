// vmlinux extraction from an x86 bzImage: a crafted image whose payload is a real LZ4 legacy stream
// (made with the lz4 CLI, as the kernel build does) of a fake ELF file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectFormat, extractVmlinux, parseBzImageHeader } from "../../src/guest/kernel/bzimage.js";
import { isKataError } from "../../src/util/errors.js";

const SETUP_SECTS = 3;
const PAYLOAD_OFFSET = 0x40;

function fakeElf(size: number): Buffer {
  const elf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) elf[i] = (i * 31 + (i >> 7)) & 0xff;
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(elf, 0);
  return elf;
}

/** A bzImage: boot header at 0x1f1.., protected-mode part after (setup_sects+1) sectors. */
function craftBzImage(payload: Buffer, opts: { protocol?: number; magic?: string } = {}): Buffer {
  const start = (SETUP_SECTS + 1) * 512;
  const image = Buffer.alloc(start + PAYLOAD_OFFSET + payload.length + 64);
  image[0x1f1] = SETUP_SECTS;
  image.write(opts.magic ?? "HdrS", 0x202, "latin1");
  image.writeUInt16LE(opts.protocol ?? 0x20f, 0x206);
  image.writeUInt32LE(PAYLOAD_OFFSET, 0x248);
  image.writeUInt32LE(payload.length, 0x24c);
  payload.copy(image, start + PAYLOAD_OFFSET);
  return image;
}

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-bzimage-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The kernel's x86 compressed payload: lz4 -l stream followed by the uncompressed size (u32 LE). */
async function lz4Payload(dir: string, elf: Buffer): Promise<Buffer> {
  await writeFile(join(dir, "vmlinux.bin"), elf);
  execFileSync("lz4", ["-l", "-q", "-f", "-9", join(dir, "vmlinux.bin"), join(dir, "vmlinux.bin.lz4")]);
  const size = Buffer.alloc(4);
  size.writeUInt32LE(elf.length);
  return Buffer.concat([await readFile(join(dir, "vmlinux.bin.lz4")), size]);
}

void test("bzimage: header fields locate the LZ4 payload", async () => {
  await withTmp(async (dir) => {
    const payload = await lz4Payload(dir, fakeElf(300_000));
    const hdr = parseBzImageHeader(craftBzImage(payload));
    assert.equal(hdr.setupSects, SETUP_SECTS);
    assert.equal(hdr.payloadStart, (SETUP_SECTS + 1) * 512 + PAYLOAD_OFFSET);
    assert.equal(hdr.payloadLength, payload.length);
    assert.equal(hdr.format, "lz4");
  });
});

void test("bzimage: extractVmlinux writes the exact ELF and leaves no scratch file", async () => {
  await withTmp(async (dir) => {
    const elf = fakeElf(5 * 1024 * 1024 + 123); // several LZ4 legacy blocks (8 MiB each max)
    await writeFile(join(dir, "bzImage"), craftBzImage(await lz4Payload(dir, elf)));
    await extractVmlinux(join(dir, "bzImage"), join(dir, "vmlinux"));
    assert.ok((await readFile(join(dir, "vmlinux"))).equals(elf));
    assert.deepEqual((await readdir(dir)).sort(), ["bzImage", "vmlinux", "vmlinux.bin", "vmlinux.bin.lz4"]);
  });
});

void test("bzimage: a payload that does not decompress to an ELF is rejected", async () => {
  await withTmp(async (dir) => {
    const notElf = Buffer.alloc(4096, 0x41);
    await writeFile(join(dir, "bzImage"), craftBzImage(await lz4Payload(dir, notElf)));
    await assert.rejects(extractVmlinux(join(dir, "bzImage"), join(dir, "vmlinux")), (err: unknown) => isKataError(err, "INTERNAL"));
  });
});

void test("bzimage: malformed headers get clear errors", () => {
  const payload = Buffer.from([0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0]);
  assert.throws(() => parseBzImageHeader(Buffer.alloc(100)), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
  assert.throws(() => parseBzImageHeader(craftBzImage(payload, { magic: "NoPe" })), /no HdrS/);
  assert.throws(() => parseBzImageHeader(craftBzImage(payload, { protocol: 0x206 })), /2\.08/);
  const truncated = craftBzImage(payload);
  truncated.writeUInt32LE(1 << 30, 0x24c);
  assert.throws(() => parseBzImageHeader(truncated), /past the end/);
  assert.throws(() => parseBzImageHeader(craftBzImage(Buffer.from("BZh91AY&SY"))), (e: unknown) => isKataError(e, "UNIMPLEMENTED"));
});

void test("bzimage: compression magics", () => {
  assert.equal(detectFormat(Buffer.from([0x1f, 0x8b, 8])), "gzip");
  assert.equal(detectFormat(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), "zstd");
  assert.equal(detectFormat(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), "xz");
  assert.equal(detectFormat(Buffer.from([0x7f, 0x45, 0x4c, 0x46])), "elf");
  assert.equal(detectFormat(Buffer.from([0, 0, 0, 0])), undefined);
});
