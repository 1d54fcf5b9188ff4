// The installer's text splice of config.toml `imports`: every other byte stays, and removal is
// the exact inverse.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { addImport, removeImport, scanTopLevel } from "../../src/deploy/toml-imports.js";

const P = "/etc/containerd/kata-ts/cri-runtime.toml";

const fixtures: Record<string, string> = {
  "debian default": 'version = 2\n\n[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n    [plugins."io.containerd.grpc.v1.cri".cni]\n      bin_dir = "/usr/lib/cni"\n',
  "no version": '# operator comment\nroot = "/var/lib/containerd"\n[grpc]\n  address = "/run/containerd/containerd.sock"\n',
  "single-line imports": 'version = 2\nimports = ["/etc/containerd/a.toml"] # keep me\n\n[plugins]\n',
  "empty imports": "version = 2\nimports = []\n",
  "multi-line imports, trailing comma, comments": 'version = 2\nimports = [\n  "/etc/containerd/conf.d/*.toml", # drop-ins\n  \'/etc/containerd/b.toml\',\n]\n[debug]\n  level = "info"\n',
  "multi-line imports, no trailing comma": 'version = 2\nimports = [\n  "/a.toml",\n  "/b.toml"\n]\n',
  "tricky strings before imports": 'version = 2\nroot = """\n[not a table]\n"""\noom_score = 0\nimports = ["/x]y.toml"]\n[grpc]\n',
  "imports only inside a table": 'version = 2\n[plugins."x"]\n  imports = ["/nope.toml"]\n',
  "no trailing newline": "version = 2",
};

for (const [name, text] of Object.entries(fixtures)) {
  void test(`addImport keeps everything else and removeImport undoes it: ${name}`, () => {
    const before = parse(text);
    const added = addImport(text, P);
    const after = parse(added);
    const topImports = (t: Record<string, unknown>) => (t.imports as string[] | undefined) ?? [];
    assert.deepEqual(topImports(after), [...topImports(before), P]);
    const { imports: _a, ...restBefore } = before;
    const { imports: _b, ...restAfter } = after;
    assert.deepEqual(restAfter, restBefore);
    assert.equal(addImport(added, P), added, "adding twice changes nothing");
    assert.equal(removeImport(added, P), text, "removal restores the bytes");
  });
}

void test("the splice touches only the imports line", () => {
  const text = fixtures["multi-line imports, trailing comma, comments"] as string;
  const added = addImport(text, P);
  assert.equal(added, text.replace("'/etc/containerd/b.toml',", `'/etc/containerd/b.toml', "${P}",`));
  const single = addImport(fixtures["single-line imports"] as string, P);
  assert.equal(single, `version = 2\nimports = ["/etc/containerd/a.toml", "${P}"] # keep me\n\n[plugins]\n`);
  assert.equal(addImport(fixtures["debian default"] as string, P), `version = 2\nimports = ["${P}"] # added by kata-ts install\n${(fixtures["debian default"] as string).slice("version = 2\n".length)}`);
});

void test("scanTopLevel stops at the first table and ignores brackets in strings and arrays", () => {
  const scan = scanTopLevel(fixtures["tricky strings before imports"] as string);
  assert.deepEqual(scan.imports?.elements.map((e) => e.value), ["/x]y.toml"]);
  assert.equal(scanTopLevel(fixtures["imports only inside a table"] as string).imports, undefined);
});

void test("removeImport keeps an operator's other entries", () => {
  const text = 'imports = ["/a.toml", "/b.toml"]\n';
  const withOurs = addImport(text, P);
  const edited = withOurs.replace('"/a.toml", ', "");
  assert.equal(removeImport(edited, P), 'imports = ["/b.toml"]\n');
  assert.equal(removeImport(`imports = ["${P}", "/b.toml"]\n`, P), 'imports = ["/b.toml"]\n');
});
