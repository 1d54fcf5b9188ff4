// EMCO resources per tenant: project, logical cloud with quotas and only kata-ts capable clusters
// for untrusted tenants, a placement intent on the kata-ts cluster label and a generic action
// intent that patches runtimeClassName into the app's pod templates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { parseAllDocuments } from "yaml";
import { isKataError } from "../../src/util/errors.js";
import { buildEmcoResources, renderEmcoctl, renderRest, type EmcoResource } from "../../src/tenancy/emco.js";
import { parsePolicy } from "../../src/tenancy/policy/load.js";

const EXAMPLE = "examples/tenancy/policy.yaml";

async function resources(edit: (text: string) => string = (t) => t): Promise<EmcoResource[]> {
  return buildEmcoResources(parsePolicy(edit(await readFile(EXAMPLE, "utf8")), EXAMPLE));
}

function at(rs: EmcoResource[], anchor: string, name?: string): EmcoResource[] {
  return rs.filter((r) => r.anchor === anchor && (name === undefined || r.metadata?.name === name));
}

const DIG = "projects/acme/composite-apps/shop/v1/deployment-intent-groups/shop-prod";

void test("tenancy emco: kata-ts capable clusters are labelled for placement", async () => {
  const rs = await resources();
  assert.deepEqual(
    rs.filter((r) => r.anchor.endsWith("/labels")).map((r) => [r.anchor, r.body]),
    [
      ["cluster-providers/edge-provider/clusters/edge-1/labels", { clusterLabel: "kata-ts-capable" }],
      ["cluster-providers/edge-provider/clusters/edge-2/labels", { clusterLabel: "kata-ts-capable" }],
    ],
  );
});

void test("tenancy emco: an untrusted tenant's project and logical cloud use only kata-ts clusters, with its quota", async () => {
  const rs = await resources();
  assert.equal(at(rs, "projects", "acme").length, 1);
  const [lc] = at(rs, "projects/acme/logical-clouds", "acme-cloud");
  assert.deepEqual(lc?.spec, { namespace: "acme-prod", user: { userName: "acme-user", type: "certificate" } });
  const refs = at(rs, "projects/acme/logical-clouds/acme-cloud/cluster-references").map((r) => r.spec?.cluster);
  assert.deepEqual(refs, ["edge-1", "edge-2"], "core-1 runs no kata-ts");
  const [quota] = at(rs, "projects/acme/logical-clouds/acme-cloud/cluster-quotas");
  assert.deepEqual(quota?.spec, { "requests.cpu": "8", "limits.cpu": "8", "requests.memory": "16Gi", "limits.memory": "16Gi", pods: "40" });
  // The trusted runc tenant may use every cluster.
  assert.deepEqual(at(rs, "projects/platform/logical-clouds/platform-cloud/cluster-references").map((r) => r.spec?.cluster), ["edge-1", "edge-2", "core-1"]);
});

void test("tenancy emco: placement selects the kata-ts label and the GAC patch sets runtimeClassName", async () => {
  const rs = await resources();
  const [app] = at(rs, `${DIG}/generic-placement-intents/web-placement/app-intents`);
  assert.deepEqual(app?.spec, { app: "web", intent: { allOf: [{ clusterProvider: "edge-provider", clusterLabel: "kata-ts-capable" }] } });
  const [res] = at(rs, `${DIG}/generic-k8s-intents/web-runtime-class/resources`);
  assert.deepEqual(res?.spec, { app: "web", newObject: "false", resourceGVK: { apiVersion: "apps/v1", kind: "Deployment", name: "web" } });
  const [cust] = at(rs, `${DIG}/generic-k8s-intents/web-runtime-class/resources/deployment-web/customizations`);
  assert.equal(cust?.spec?.patchType, "json");
  assert.deepEqual(cust?.spec?.patchJson, [{ op: "add", path: "/spec/template/spec/runtimeClassName", value: "kata-ts" }]);
  assert.deepEqual((cust?.spec?.clusterInfo as Record<string, unknown>).clusterLabel, "kata-ts-capable");
  const [intents] = at(rs, `${DIG}/intents`);
  assert.deepEqual(intents?.spec, { intent: { genericPlacementIntent: "web-placement", gac: "web-runtime-class" } });
  // Parents come before children, so emcoctl apply creates them in order.
  const order = rs.map((r) => r.anchor);
  assert.ok(order.indexOf(`${DIG}/generic-k8s-intents`) < order.indexOf(`${DIG}/generic-k8s-intents/web-runtime-class/resources`));
});

void test("tenancy emco: emcoctl and REST renderings carry the same resources", async () => {
  const rs = await resources();
  const docs = parseAllDocuments(renderEmcoctl(rs)).map((d) => d.toJS() as Record<string, unknown>);
  assert.equal(docs.length, rs.length);
  for (const d of docs) assert.equal(d.version, "emco/v2");
  assert.deepEqual(docs[2], { version: "emco/v2", resourceContext: { anchor: "projects" }, metadata: { name: "acme", description: "kata-ts tenant acme (untrusted)" } });
  const rest = renderRest(rs);
  assert.equal(rest[2]?.path, "/v2/projects");
  assert.deepEqual(rest[0], { method: "POST", path: "/v2/cluster-providers/edge-provider/clusters/edge-1/labels", body: { clusterLabel: "kata-ts-capable" } });
});

void test("tenancy emco: an untrusted tenant with no kata-ts cluster is an error, as is a policy without emco", async () => {
  await assert.rejects(resources((t) => t.replace(/kataTs: true/g, "kataTs: false")), (err: unknown) => isKataError(err, "FAILED_PRECONDITION") && /acme.*kata-ts capable cluster/.test(err.message));
  const noEmco = parsePolicy(
    "apiVersion: tenancy.kata-ts.io/v1alpha1\nkind: TenantPolicy\nruntimeClasses: { kata-ts: { isolation: vm } }\n" +
      "tenants: [{ name: a, trust: untrusted, namespaces: [a], quota: { cpu: '1', memory: 1Gi } }]\n",
    "inline.yaml",
  );
  assert.throws(() => buildEmcoResources(noEmco), (err: unknown) => isKataError(err, "FAILED_PRECONDITION") && /no emco section/.test(err.message));
});
