// bench/lib/image-residency: the file extents of a real erofs image (mkfs.erofs with the project's
// layout, read back with dump.erofs) and resident pages of a real mapping (this process's own
// mapping of its node binary, from /proc/self/pagemap) attributed to those extents.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { erofsExtents, imageResidency } from "../../bench/lib/image-residency.js";
import { run } from "../../src/util/exec.js";

void test("erofsExtents lists every regular file of an erofs image with its data's place and size", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-residency-"));
  try {
    await mkdir(join(dir, "tree/usr/bin"), { recursive: true });
    await writeFile(join(dir, "tree/usr/bin/tool"), Buffer.alloc(3 * 4096 + 100, 1));
    await writeFile(join(dir, "tree/data"), Buffer.alloc(5 * 4096, 2));
    const image = join(dir, "image.erofs");
    await run("mkfs.erofs", ["--quiet", "-T0", "--all-root", "-x-1", "-Enoinline_data", image, join(dir, "tree")]);
    const extents = await erofsExtents(image);
    const byPath = new Map(extents.map((e) => [e.path, e]));
    assert.deepEqual([...byPath.keys()].sort(), ["/data", "/usr/bin/tool"]);
    assert.equal(byPath.get("/data")!.end - byPath.get("/data")!.start, 5 * 4096);
    assert.equal(byPath.get("/usr/bin/tool")!.end - byPath.get("/usr/bin/tool")!.start, 4 * 4096, "data in whole blocks (no inline tail)");
    const size = (await stat(image)).size;
    for (const e of extents) assert.ok(e.start % 4096 === 0 && e.end <= size, `${e.path} lies in the image on a block boundary`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("imageResidency counts a mapping's present pages and names the file they belong to", async () => {
  const binary = await realpath(process.execPath);
  const size = (await stat(binary)).size;
  const whole = await imageResidency(process.pid, binary, [{ path: "/node", start: 0, end: size }]);
  assert.ok(whole.totalKiB > 0, "a running node has pages of its own binary mapped");
  assert.deepEqual(whole.byFile.map(([f]) => f), ["/node"]);
  assert.equal(whole.byFile[0]![1], whole.totalKiB);
  // The ELF header page is mapped by every executable; the rest of the first mapping is left unnamed.
  const head = await imageResidency(process.pid, binary, [{ path: "/header", start: 0, end: 4096 }]);
  assert.deepEqual(head.byFile.find(([f]) => f === "/header"), ["/header", 4]);
  assert.equal(head.totalKiB, whole.totalKiB);
  const none = await imageResidency(process.pid, "/nonexistent/image.erofs", []);
  assert.deepEqual(none, { totalKiB: 0, byFile: [] });
});
