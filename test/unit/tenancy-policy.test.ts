// Tenant policy files: the shipped example loads, and every kind of mistake is reported with
// file, line, key path and what is wrong.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isKataError } from "../../src/util/errors.js";
import { loadPolicy, parsePolicy, PolicyError, type PolicyIssue } from "../../src/tenancy/policy/load.js";
import { allowedRuntimeClasses, defaultRuntimeClass } from "../../src/tenancy/policy/model.js";

const HEAD = `apiVersion: tenancy.kata-ts.io/v1alpha1
kind: TenantPolicy
runtimeClasses:
  kata-ts: { isolation: vm, overhead: { cpu: 250m, memory: 160Mi } }
  runc: { isolation: none }
tenants:
`;

function issues(body: string, file = "policy.yaml"): PolicyIssue[] {
  try {
    parsePolicy(HEAD + body, file);
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    assert.ok(isKataError(err, "INVALID_ARGUMENT"));
    assert.match(err.message, new RegExp(`invalid tenant policy ${file}`));
    return [...err.issues];
  }
  assert.fail("expected the policy to be rejected");
}

function only(list: PolicyIssue[]): PolicyIssue {
  assert.equal(list.length, 1, JSON.stringify(list));
  return list[0] as PolicyIssue;
}

void test("tenancy policy: the shipped example loads with its defaults resolved", async () => {
  const p = await loadPolicy("examples/tenancy/policy.yaml");
  const [acme, platform] = p.tenants;
  assert.ok(acme && platform);
  assert.equal(acme.trust, "untrusted");
  assert.deepEqual(allowedRuntimeClasses(p, acme), ["kata-ts"]);
  assert.equal(defaultRuntimeClass(p, acme), "kata-ts");
  assert.deepEqual(allowedRuntimeClasses(p, platform), ["kata-ts", "runc"]);
  assert.equal(defaultRuntimeClass(p, platform), "runc");
  assert.equal(p.webhook.failurePolicy, "Fail");
});

void test("tenancy policy: an unknown key is named with its line and full path", () => {
  const i = only(issues(`  - name: acme
    trust: untrusted
    namespaces: [acme]
    quota: { cpu: "2", memory: 4Gi }
    netwrok: { allowDns: true }
`));
  assert.equal(i.path, "tenants[0].netwrok");
  assert.equal(i.file, "policy.yaml");
  assert.equal(i.line, 11);
  assert.match(i.message, /unknown key/);
});

void test("tenancy policy: bad values name the key path and the rule broken", () => {
  const list = issues(`  - name: acme
    trust: maybe
    namespaces: [acme, Acme_Prod]
    quota: { cpu: lots, memory: 4Gi }
`);
  const byPath = new Map(list.map((i) => [i.path, i]));
  assert.match(byPath.get("tenants[0].trust")?.message ?? "", /trusted.*untrusted/);
  assert.equal(byPath.get("tenants[0].trust")?.line, 8);
  assert.match(byPath.get("tenants[0].namespaces[1]")?.message ?? "", /RFC 1123 label/);
  assert.match(byPath.get("tenants[0].quota.cpu")?.message ?? "", /Kubernetes quantity/);
  assert.equal(list.length, 3);
});

void test("tenancy policy: an untrusted tenant cannot be given a non-VM runtime class", () => {
  const i = only(issues(`  - name: acme
    trust: untrusted
    namespaces: [acme]
    runtimeClasses: [kata-ts, runc]
    quota: { cpu: "2", memory: 4Gi }
`));
  assert.equal(i.path, "tenants[0].runtimeClasses[1]");
  assert.equal(i.line, 10);
  assert.match(i.message, /"runc" does not isolate with a VM.*untrusted tenant may only use VM runtime classes/);
});

void test("tenancy policy: undeclared runtime classes and defaults outside the allowed list are refused", () => {
  const list = issues(`  - name: acme
    trust: trusted
    namespaces: [acme]
    runtimeClasses: [gvisor]
    defaultRuntimeClass: runc
    quota: { cpu: "2", memory: 4Gi }
`);
  assert.deepEqual(list.map((i) => i.path), ["tenants[0].runtimeClasses[0]", "tenants[0].defaultRuntimeClass"]);
  assert.match(list[0]?.message ?? "", /"gvisor" is not declared under runtimeClasses \(declared: kata-ts, runc\)/);
  assert.match(list[1]?.message ?? "", /defaults to "runc", which is not among its runtime classes/);
});

void test("tenancy policy: a namespace belongs to one tenant, and system namespaces to none", () => {
  const list = issues(`  - name: a
    trust: untrusted
    namespaces: [shared, kube-system]
    quota: { cpu: "2", memory: 4Gi }
  - name: b
    trust: trusted
    namespaces: [shared]
    quota: { cpu: "2", memory: 4Gi }
`);
  assert.deepEqual(list.map((i) => [i.path, i.line]), [["tenants[0].namespaces[1]", 9], ["tenants[1].namespaces[0]", 13]]);
  assert.match(list[0]?.message ?? "", /system namespace/);
  assert.match(list[1]?.message ?? "", /already belongs to tenant "a"/);
});

void test("tenancy policy: a quota that cannot hold one default pod plus its VM overhead is refused", () => {
  const list = issues(`  - name: acme
    trust: untrusted
    namespaces: [acme]
    quota: { cpu: 600m, memory: 600Mi }
    containerDefaults: { cpu: 500m, memory: 512Mi }
`);
  assert.deepEqual(list.map((i) => i.path), ["tenants[0].quota.cpu", "tenants[0].quota.memory"]);
  assert.match(list[0]?.message ?? "", /600m cannot fit one default pod: container default 500m \+ kata-ts overhead 250m = 750m/);
  assert.match(list[1]?.message ?? "", /container default 512Mi \+ kata-ts overhead 160Mi = 672Mi/);
});

void test("tenancy policy: the default VM class must be a declared VM class", () => {
  let err: unknown;
  try {
    parsePolicy(HEAD.replace("runc: { isolation: none }", "runc: { isolation: none }\ndefaultVmRuntimeClass: runc") + `  - name: a
    trust: trusted
    namespaces: [a]
    quota: { cpu: "2", memory: 4Gi }
`, "p.yaml");
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof PolicyError);
  assert.equal(err.issues[0]?.path, "defaultVmRuntimeClass");
  assert.equal(err.issues[0]?.line, 6);
  assert.match(err.issues[0]?.message ?? "", /must be declared under runtimeClasses with isolation: vm/);
});

void test("tenancy policy: YAML syntax errors and wrong document kinds are reported with positions", () => {
  const syntax = only(issues(`  - name: acme\n    trust: [untrusted\n`));
  assert.match(syntax.message, /^YAML: /);
  assert.ok(syntax.line !== undefined && syntax.line >= 7);
  assert.throws(() => parsePolicy("apiVersion: v1\nkind: ConfigMap\n", "cm.yaml"), (err: PolicyError) => {
    assert.deepEqual(err.issues.map((i) => i.path).slice(0, 2), ["apiVersion", "kind"]);
    assert.match(err.message, /cm\.yaml:1:13: apiVersion: /);
    return true;
  });
});

void test("tenancy policy: a missing file is NOT_FOUND and names the file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-policy-"));
  try {
    const file = join(dir, "nope.yaml");
    await assert.rejects(loadPolicy(file), (err: unknown) => isKataError(err, "NOT_FOUND") && err.message.includes(file));
    await writeFile(join(dir, "empty.yaml"), "");
    await assert.rejects(loadPolicy(join(dir, "empty.yaml")), (err: unknown) => err instanceof PolicyError && err.issues.length > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
