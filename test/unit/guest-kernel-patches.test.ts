// Kernel patches: which are applied and in what order, how they name the kernel build (cache key,
// manifest), and that one which does not apply fails the build naming it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addedParameters, applyPatches, loadPatches, patchedFiles, patchesHash, type KernelPatch } from "../../src/guest/kernel/patches.js";
import { kernelCacheKey, kernelTraits } from "../../src/guest/kernel/project.js";
import { inputsKey } from "../../src/guest/build.js";
import { isKataError } from "../../src/util/errors.js";

const repoRoot = join(import.meta.dirname, "..", "..", "..");
const patchesDir = join(repoRoot, "src", "guest", "kernel", "patches");

function diff(file: string, before: string, after: string): string {
  return `--- a/${file}\n+++ b/${file}\n@@ -1 +1 @@\n-${before}\n+${after}\n`;
}

function patch(name: string, header: string, file = "f.c", before = "one", after = "two"): KernelPatch {
  return { name, text: `${header}\n\n${diff(file, before, after)}` };
}

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-patches-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void test("kernel patches: the shipped x86_64 set loads, each with a header, and adds the lapic_timer_period parameter", async () => {
  const patches = await loadPatches(patchesDir, "x86_64");
  assert.ok(patches.some((p) => p.name === "x86_64/0001-lapic-timer-period.patch"), patches.map((p) => p.name).join(" "));
  assert.ok(addedParameters(patches).includes("lapic_timer_period"));
  assert.ok(patchedFiles(patches).includes("arch/x86/kernel/apic/apic.c"));
  assert.match(patchesHash(patches) ?? "", /^[0-9a-f]{64}$/);
});

void test("kernel patches: common/ first, then the arch's, each in name order; other files and a missing directory are ignored", async () => {
  await withTemp(async (dir) => {
    await mkdir(join(dir, "common"));
    await mkdir(join(dir, "x86_64"));
    const files: Record<string, string> = {
      "common/0002-b.patch": "second common\n\n" + diff("b.c", "1", "2"),
      "common/0001-a.patch": "first common\n\n" + diff("a.c", "1", "2"),
      "common/README": "not a patch",
      "x86_64/0001-c.patch": "arch\nAdds-Parameter: foo_bar\n\n" + diff("c.c", "1", "2"),
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const patches = await loadPatches(dir, "x86_64");
    assert.deepEqual(patches.map((p) => p.name), ["common/0001-a.patch", "common/0002-b.patch", "x86_64/0001-c.patch"]);
    assert.deepEqual(addedParameters(patches), ["foo_bar"]);
    assert.deepEqual(patchedFiles(patches), ["a.c", "b.c", "c.c"]);
    await rm(join(dir, "x86_64"), { recursive: true });
    assert.equal((await loadPatches(dir, "x86_64")).length, 2);
  });
});

void test("kernel patches: a patch without a header or without a diff is refused, naming it", async () => {
  await withTemp(async (dir) => {
    await mkdir(join(dir, "common"));
    await writeFile(join(dir, "common", "0001-bare.patch"), diff("a.c", "1", "2"));
    await assert.rejects(loadPatches(dir, "x86_64"), (e: unknown) => isKataError(e, "INVALID_ARGUMENT") && e.message.includes("common/0001-bare.patch") && e.message.includes("header"));
    await writeFile(join(dir, "common", "0001-bare.patch"), "a header but no diff\n");
    await assert.rejects(loadPatches(dir, "x86_64"), (e: unknown) => isKataError(e, "INVALID_ARGUMENT") && e.message.includes("common/0001-bare.patch"));
  });
});

void test("kernel patches: the set's hash names the kernel build (cache key, inputs key) and changes with any patch's text, name or order", () => {
  const a = patch("x86_64/0001-a.patch", "a");
  const b = patch("x86_64/0002-b.patch", "b", "g.c");
  const h = patchesHash([a, b]);
  assert.equal(patchesHash([]), undefined, "no patches: the stock kernel keeps its identity");
  assert.equal(patchesHash([a, b]), h, "stable");
  assert.notEqual(patchesHash([b, a]), h, "order");
  assert.notEqual(patchesHash([{ ...a, text: a.text.replace("two", "three") }, b]), h, "text");
  assert.notEqual(patchesHash([{ ...a, name: "x86_64/0003-a.patch" }, b]), h, "name");
  const id = { source: "project" as const, package: "linux-source-6.1", version: "6.1.1", configSha256: "c".repeat(64) };
  assert.equal(kernelCacheKey(id), `6.1.1-${"c".repeat(16)}`, "a build without patches keeps the key it had");
  assert.equal(kernelCacheKey({ ...id, patchesSha256: h ?? "" }), `6.1.1-${"c".repeat(16)}-${(h ?? "").slice(0, 16)}`);
  const parts = { kernel: id, components: {}, agentSha256: "x" };
  assert.notEqual(inputsKey({ ...parts, kernel: { ...id, patchesSha256: h ?? "" } }), inputsKey(parts), "--if-stale rebuilds when the patches change");
});

void test("kernel patches: applied in order to a tree; one that does not apply (or applied already) fails naming it", async () => {
  await withTemp(async (dir) => {
    await writeFile(join(dir, "f.c"), "one\n");
    await writeFile(join(dir, "g.c"), "alpha\n");
    const lines: string[] = [];
    await applyPatches(dir, [patch("common/0001-f.patch", "f"), patch("common/0002-f-again.patch", "f again", "f.c", "two", "three")], (l) => lines.push(l));
    assert.equal(await readFile(join(dir, "f.c"), "utf8"), "three\n");
    assert.deepEqual(lines, ["kernel: applied common/0001-f.patch", "kernel: applied common/0002-f-again.patch"]);
    await assert.rejects(
      applyPatches(dir, [patch("x86_64/0001-g.patch", "g", "g.c", "beta", "gamma")], () => undefined),
      (e: unknown) => isKataError(e, "FAILED_PRECONDITION") && e.message.includes("kernel patch x86_64/0001-g.patch does not apply"),
    );
    assert.equal(await readFile(join(dir, "g.c"), "utf8"), "alpha\n", "left as it was");
    await assert.rejects(
      applyPatches(dir, [patch("common/0002-f-again.patch", "f again", "f.c", "two", "three")], () => undefined),
      (e: unknown) => isKataError(e, "FAILED_PRECONDITION") && e.message.includes("common/0002-f-again.patch"),
      "--forward: an applied patch is an error, not a question",
    );
  });
});

void test("kernel traits: HZ from the built .config, the patches' parameters, and whether the kernel boots without ACPI", () => {
  const patches = [patch("x86_64/0001-a.patch", "a\nAdds-Parameter: lapic_timer_period")];
  assert.deepEqual(kernelTraits("CONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_X86_MPPARSE=y\nCONFIG_PVPANIC_PCI=y\n", patches), { hz: 250, addedParams: ["lapic_timer_period"], bootsWithoutAcpi: true });
  assert.deepEqual(kernelTraits("CONFIG_HZ=100\n# CONFIG_X86_MPPARSE is not set\nCONFIG_PVPANIC_PCI=y\n", []), { hz: 100, addedParams: [], bootsWithoutAcpi: false });
  assert.throws(() => kernelTraits("CONFIG_X86_MPPARSE=y\n", []), (e: unknown) => isKataError(e, "INTERNAL") && e.message.includes("CONFIG_HZ"));
});
