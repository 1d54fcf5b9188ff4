// `kata-ts tenancy ...` as a user runs it: exit codes, stdout, and errors on stderr.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

function kataTs(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/kata-ts.js", ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

void test("tenancy cli: check, manifests and emco succeed on the example policy", async () => {
  const check = await kataTs(["tenancy", "check", "examples/tenancy/policy.yaml"]);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /valid, 2 tenant\(s\)\n {2}acme \(untrusted\): acme-prod, acme-dev/);
  const manifests = await kataTs(["tenancy", "manifests", "examples/tenancy/policy.yaml"]);
  assert.equal(manifests.code, 0, manifests.stderr);
  const kinds = parseAllDocuments(manifests.stdout).map((d) => (d.toJS() as { kind: string }).kind);
  assert.ok(kinds.includes("ValidatingWebhookConfiguration") && kinds.includes("NetworkPolicy"));
  assert.doesNotMatch(manifests.stdout, /^\s*(-\s+)?\S*:?\s*[&*]a\d+\s*$/m, "plain YAML, no anchors/aliases for shared objects");
  const emco = await kataTs(["tenancy", "emco", "examples/tenancy/policy.yaml", "--format", "rest"]);
  assert.equal(emco.code, 0, emco.stderr);
  assert.ok((JSON.parse(emco.stdout) as { path: string }[]).some((c) => c.path === "/v2/projects/acme/logical-clouds"));
});

void test("tenancy cli: a broken policy exits 2 with file:line, key path and problem on stderr", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-cli-"));
  try {
    const file = join(dir, "p.yaml");
    await writeFile(
      file,
      "apiVersion: tenancy.kata-ts.io/v1alpha1\nkind: TenantPolicy\nruntimeClasses: { kata-ts: { isolation: vm }, runc: { isolation: none } }\n" +
        "tenants:\n  - name: a\n    trust: untrusted\n    namespaces: [a]\n    runtimeClasses: [runc]\n    quota: { cpu: '1', memory: 1Gi }\n",
    );
    const r = await kataTs(["tenancy", "manifests", file]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, new RegExp(`${file}:8:22: tenants\\[0\\]\\.runtimeClasses\\[0\\]: "runc" does not isolate with a VM`));
    const usage = await kataTs(["tenancy", "frobnicate"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown tenancy command "frobnicate"/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
