// bench/lib/vmm-memory: PSS by kind of mapping from a real /proc/<pid>/smaps (this process's own),
// with the largest anonymous mappings named, as bench/boot.ts prints them for QEMU.
import { test } from "node:test";
import assert from "node:assert/strict";
import { smapsBreakdown } from "../../bench/lib/vmm-memory.js";

void test("smapsBreakdown names the largest anonymous mappings: a touched 32 MiB buffer comes first", async () => {
  // Above glibc's mmap threshold: its own anonymous mapping, every page written.
  const buffer = Buffer.allocUnsafeSlow(32 * 1024 * 1024).fill(1);
  // Sizes that match no mapping of this process: nothing is taken for guest RAM or TCG's buffer.
  const noSuchSizeKiB = 2 ** 40;
  const b = await smapsBreakdown(process.pid, noSuchSizeKiB, noSuchSizeKiB);
  assert.equal(b.guestRam, 0);
  assert.equal(b.tcgCode, 0);
  assert.equal(b.topAnon.length, 3);
  const entries = b.topAnon.map((e) => {
    const m = /^(\[[a-z_]+\]|anon\d+)=(\d+)$/.exec(e);
    assert.ok(m !== null, `${e} is "[name]=KiB" or "anon<size KiB>=KiB"`);
    return { name: m[1]!, pssKiB: Number(m[2]) };
  });
  assert.deepEqual(entries.map((e) => e.pssKiB), entries.map((e) => e.pssKiB).sort((x, y) => y - x), "largest first");
  assert.ok(entries[0]!.pssKiB >= 32 * 1024, `the buffer's mapping leads with its 32 MiB: ${b.topAnon.join(", ")}`);
  assert.ok(entries.reduce((sum, e) => sum + e.pssKiB, 0) <= b.anon, "a share of the anonymous total");
  assert.ok(b.files > 0 && b.topFiles.length === 3, "node's own binary and libraries are file mappings");
  assert.equal(buffer[buffer.length - 1], 1);
});
