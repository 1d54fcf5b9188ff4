// The manifests `kata-ts tenancy manifests` prints validate strictly against the Kubernetes API
// schemas, the validator catches typos and wrong types, and the webhook wiring is consistent.
/* eslint-disable @typescript-eslint/no-explicit-any -- the assertions walk deep into untyped manifest JSON */
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { formatManifestError, validateManifest, validateManifests } from "../../src/k8s/validate.js";
import { buildManifests, type Manifest } from "../../src/tenancy/manifests/index.js";
import { parsePolicy } from "../../src/tenancy/policy/load.js";
import { generateWebhookTls, readWebhookTls } from "../../src/tenancy/tls.js";
import { manifestsYaml } from "../../src/tenancy/cli-actions.js";

const EXAMPLE = "examples/tenancy/policy.yaml";

async function example(): Promise<{ manifests: Manifest[]; caCert: string; text: string }> {
  const text = await readFile(EXAMPLE, "utf8");
  const tls = generateWebhookTls({ dnsNames: ["kata-ts-tenancy-webhook.kata-ts-system.svc"] });
  return { manifests: buildManifests(parsePolicy(text, EXAMPLE), { policyText: text, tls }), caCert: tls.caCert, text };
}

function find(ms: Manifest[], kind: string, name: string, namespace?: string): Record<string, any> {
  const m = ms.find((x) => x.kind === kind && (x.metadata as any)?.name === name && (namespace === undefined || (x.metadata as any)?.namespace === namespace));
  assert.ok(m, `${kind} ${namespace ?? ""}/${name} missing`);
  return m as Record<string, any>;
}

void test("tenancy manifests: every object of the example validates against the Kubernetes schemas", async () => {
  const { manifests } = await example();
  const errors = await validateManifests(manifests);
  assert.deepEqual(errors.map(formatManifestError), []);
  const kinds = new Set(manifests.map((m) => m.kind));
  for (const k of ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding", "Deployment", "Service", "Secret", "ConfigMap", "ServiceAccount", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]) {
    assert.ok(kinds.has(k), `no ${k}`);
  }
});

void test("k8s validate: unknown fields anywhere are rejected, maps and free-form fields are not", async () => {
  const { manifests } = await example();
  const dep = structuredClone(find(manifests, "Deployment", "kata-ts-tenancy-webhook"));
  dep.spec.template.spec.containers[0].imagePulPolicy = "Always";
  dep.spec.replcas = 3;
  const errs = await validateManifest(dep);
  assert.deepEqual(
    errs.map((e) => [e.path, e.message]),
    [["/spec/replcas", "unknown field"], ["/spec/template/spec/containers/0/imagePulPolicy", "unknown field"]].sort(),
  );
  assert.equal(errs[0]?.object, "Deployment/kata-ts-system/kata-ts-tenancy-webhook");

  const hook = structuredClone(find(manifests, "ValidatingWebhookConfiguration", "kata-ts-tenancy-webhook"));
  hook.webhooks[0].sideEfects = "None";
  assert.deepEqual((await validateManifest(hook)).map((e) => e.path), ["/webhooks/0/sideEfects"]);

  // Labels, annotations, quota "hard" and ConfigMap data are maps: any key is fine there.
  const cm = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", labels: { "any/key": "v" }, annotations: { z: "1" } }, data: { "whatever.yaml": "a" } };
  assert.deepEqual(await validateManifest(cm), []);
});

void test("k8s validate: wrong types, enum values and missing required fields are reported", async () => {
  const { manifests } = await example();
  const np = structuredClone(find(manifests, "NetworkPolicy", "default-deny", "acme-prod"));
  np.spec.policyTypes = ["Ingress", "Egres"];
  assert.deepEqual((await validateManifest(np)).map((e) => [e.path, e.message]), [["/spec/policyTypes/1", 'must be one of "Egress", "Ingress"']]);
  const rq = structuredClone(find(manifests, "ResourceQuota", "tenant-quota", "acme-prod"));
  rq.spec.hard["requests.cpu"] = "eight";
  assert.ok((await validateManifest(rq)).some((e) => e.path === "/spec/hard/requests.cpu"));
  const rb = structuredClone(find(manifests, "RoleBinding", "tenant-admins", "acme-prod"));
  delete rb.roleRef;
  assert.deepEqual((await validateManifest(rb)).map((e) => e.message), ['missing required field "roleRef"']);
  assert.deepEqual((await validateManifest({ apiVersion: "v1", kind: "Container" })).map((e) => e.message), ["unknown kind Container in v1"]);
  assert.deepEqual((await validateManifest("nope")).map((e) => e.message), ["a manifest must be a JSON/YAML object"]);
});

void test("k8s validate: node-installer kinds (RuntimeClass with overhead, DaemonSet) validate too", async () => {
  const rc = {
    apiVersion: "node.k8s.io/v1",
    kind: "RuntimeClass",
    metadata: { name: "kata-ts" },
    handler: "kata-ts",
    overhead: { podFixed: { cpu: "250m", memory: "160Mi" } },
    scheduling: { nodeSelector: { "katats.io/runtime": "true" } },
  };
  assert.deepEqual(await validateManifest(rc), []);
  assert.deepEqual((await validateManifest({ ...rc, handlr: "x" })).map((e) => e.path), ["/handlr"]);
  const ds = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: "kata-ts-deploy", namespace: "kube-system" },
    spec: {
      selector: { matchLabels: { name: "kata-ts-deploy" } },
      template: {
        metadata: { labels: { name: "kata-ts-deploy" } },
        spec: { hostPID: true, containers: [{ name: "installer", image: "kata-ts:latest", securityContext: { privileged: true } }], volumes: [{ name: "host", hostPath: { path: "/" } }] },
      },
    },
  };
  assert.deepEqual(await validateManifest(ds), []);
});

void test("tenancy manifests: untrusted namespaces are labelled and guarded, trusted ones are not", async () => {
  const { manifests } = await example();
  const acme = find(manifests, "Namespace", "acme-prod");
  assert.equal(acme.metadata.labels["tenancy.kata-ts.io/tenant"], "acme");
  assert.equal(acme.metadata.labels["tenancy.kata-ts.io/trust"], "untrusted");
  assert.equal(acme.metadata.labels["pod-security.kubernetes.io/enforce"], "baseline");
  const platform = find(manifests, "Namespace", "platform-tools");
  assert.equal(platform.metadata.labels["pod-security.kubernetes.io/enforce"], undefined);
  for (const kind of ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]) {
    const [hook] = find(manifests, kind, "kata-ts-tenancy-webhook").webhooks;
    assert.deepEqual(hook.namespaceSelector.matchExpressions, [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["acme-prod", "acme-dev"] }]);
    assert.equal(hook.failurePolicy, "Fail");
    assert.deepEqual(hook.admissionReviewVersions, ["v1"]);
    assert.equal(hook.clientConfig.service.name, "kata-ts-tenancy-webhook");
  }
  const validating = find(manifests, "ValidatingWebhookConfiguration", "kata-ts-tenancy-webhook").webhooks[0];
  assert.deepEqual(validating.rules.map((r: any) => [r.operations, r.resources]), [[["CREATE"], ["pods"]], [["UPDATE"], ["pods/ephemeralcontainers"]]]);
});

void test("tenancy manifests: caBundle is the CA that signed the serving certificate in the Secret", async () => {
  const { manifests, caCert } = await example();
  const bundle = Buffer.from(find(manifests, "MutatingWebhookConfiguration", "kata-ts-tenancy-webhook").webhooks[0].clientConfig.caBundle, "base64").toString();
  assert.equal(bundle, caCert);
  const secret = find(manifests, "Secret", "kata-ts-tenancy-webhook-tls", "kata-ts-system");
  assert.equal(secret.type, "kubernetes.io/tls");
  const cert = new X509Certificate(Buffer.from(secret.data["tls.crt"], "base64"));
  const ca = new X509Certificate(bundle);
  assert.ok(ca.ca);
  assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
  assert.match(cert.subjectAltName ?? "", /DNS:kata-ts-tenancy-webhook\.kata-ts-system\.svc/);
});

void test("tenancy manifests: quotas, defaults and network isolation per tenant namespace", async () => {
  const { manifests, text } = await example();
  const rq = find(manifests, "ResourceQuota", "tenant-quota", "acme-dev");
  assert.deepEqual(rq.spec.hard, { "requests.cpu": "8", "limits.cpu": "8", "requests.memory": "16Gi", "limits.memory": "16Gi", pods: "40" });
  // 8 CPU / (500m + 250m overhead) = 10 pods; 16Gi / (512Mi + 160Mi) = 24: CPU bounds it.
  assert.equal(rq.metadata.annotations["tenancy.kata-ts.io/default-pods-that-fit"], "10");
  assert.equal(rq.metadata.annotations["tenancy.kata-ts.io/pod-overhead"], "kata-ts: cpu=250m memory=160Mi");
  const lr = find(manifests, "LimitRange", "tenant-defaults", "acme-dev");
  assert.deepEqual(lr.spec.limits[0].default, { cpu: "500m", memory: "512Mi" });
  const deny = find(manifests, "NetworkPolicy", "default-deny", "acme-dev");
  assert.deepEqual(deny.spec, { podSelector: {}, policyTypes: ["Ingress", "Egress"] });
  const allow = find(manifests, "NetworkPolicy", "allow-same-tenant", "acme-dev");
  assert.deepEqual(allow.spec.ingress[0].from, [
    { namespaceSelector: { matchLabels: { "tenancy.kata-ts.io/tenant": "acme" } } },
    { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } },
  ]);
  assert.deepEqual(allow.spec.egress[1].ports, [{ protocol: "UDP", port: 53 }, { protocol: "TCP", port: 53 }]);
  const rb = find(manifests, "RoleBinding", "tenant-admins", "acme-prod");
  assert.deepEqual(rb.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "edit" });
  assert.equal(find(manifests, "ConfigMap", "kata-ts-tenancy-webhook-policy", "kata-ts-system").data["policy.yaml"], text);
});

void test("tenancy manifests: the CLI path prints valid YAML and keeps its TLS in --tls-dir", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-tls-"));
  try {
    const first = await manifestsYaml(EXAMPLE, dir);
    const docs = parseAllDocuments(first).map((d) => d.toJS() as Manifest);
    assert.deepEqual(await validateManifests(docs), []);
    assert.equal((await stat(join(dir, "tls.key"))).mode & 0o777, 0o600);
    const saved = await readWebhookTls(dir);
    const again = parseAllDocuments(await manifestsYaml(EXAMPLE, dir)).map((d) => d.toJS() as Manifest);
    const ca = (ms: Manifest[]) => Buffer.from(find(ms, "ValidatingWebhookConfiguration", "kata-ts-tenancy-webhook").webhooks[0].clientConfig.caBundle, "base64").toString();
    assert.equal(ca(docs), saved?.caCert);
    assert.equal(ca(again), saved?.caCert, "a second run reuses the saved CA");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
