// The shipped Kubernetes manifests: valid against the Kubernetes schemas (strict: no unknown
// fields), the RuntimeClass wired to the handler, the installer's node label and the measured
// overhead (measured + margin from overhead.json), and the installer DaemonSet able to do its job.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { formatManifestError, validateManifests } from "../../src/k8s/validate.js";
import { MANIFEST_SETS, manifests } from "../../src/deploy/manifests/index.js";
import { loadOverheadData, podFixedOverhead } from "../../src/deploy/manifests/overhead.js";
import { NODE_LABEL_KEY } from "../../src/deploy/node-install.js";

const cliPath = join(import.meta.dirname, "..", "..", "..", "bin", "kata-ts.js");
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- free-form manifest objects in assertions
type Any = Record<string, any>;
const byKind = (objs: Any[], kind: string): Any[] => objs.filter((o) => o.kind === kind);

void test("every manifest set validates against the Kubernetes schemas", async () => {
  for (const set of MANIFEST_SETS) {
    const errors = await validateManifests(manifests(set));
    assert.deepEqual(errors.map(formatManifestError), [], set);
  }
});

void test("RuntimeClass kata-ts: handler, node selector on the installer's label, overhead = measured + margin", () => {
  const [rc] = manifests("runtimeclass") as Any[];
  const data = loadOverheadData();
  assert.equal(rc?.apiVersion, "node.k8s.io/v1");
  assert.equal(rc?.handler, "kata-ts");
  assert.deepEqual(rc?.scheduling.nodeSelector, { [NODE_LABEL_KEY]: "true" });
  assert.ok(data.measuredPssMiB > 0 && data.measuredCpuMillicores > 0, "overhead.json holds a real measurement");
  const f = 1 + data.marginPercent / 100;
  assert.equal(rc?.overhead.podFixed.memory, `${Math.ceil(data.measuredPssMiB * f)}Mi`);
  assert.equal(rc?.overhead.podFixed.cpu, `${Math.ceil(data.measuredCpuMillicores * f)}m`);
  assert.deepEqual(rc?.overhead.podFixed, podFixedOverhead(data));
});

void test("installer DaemonSet: privileged, hostPID, host paths mounted, installs + labels, unlabels + uninstalls on stop", () => {
  const objs = manifests("installer", { image: "example/kata-ts-deploy:1" }) as Any[];
  const [ds] = byKind(objs, "DaemonSet");
  const spec = ds?.spec.template.spec;
  assert.equal(spec.hostPID, true);
  assert.equal(spec.serviceAccountName, byKind(objs, "ServiceAccount")[0]?.metadata.name);
  const c = spec.containers[0];
  assert.equal(c.image, "example/kata-ts-deploy:1");
  assert.equal(c.securityContext.privileged, true);
  const mounts = new Set(c.volumeMounts.map((m: Any) => m.mountPath));
  for (const p of ["/etc/containerd", "/opt", "/run/containerd"]) assert.ok(mounts.has(p), p);
  const script = c.command.join(" ");
  assert.match(script, /cli\/main\.js install --restart host/);
  assert.match(script, new RegExp(`kubectl label node "\\$NODE_NAME" ${NODE_LABEL_KEY}=true`));
  const preStop = c.lifecycle.preStop.exec.command.join(" ");
  assert.ok(preStop.indexOf(`${NODE_LABEL_KEY}-`) < preStop.indexOf("uninstall"), "unlabel before uninstall");
  const rules = byKind(objs, "ClusterRole")[0]?.rules;
  assert.deepEqual(rules, [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "patch"] }]);
  const cleanup = byKind(manifests("cleanup") as Any[], "DaemonSet")[0];
  assert.match(cleanup?.spec.template.spec.containers[0].command.join(" "), /uninstall --restart host/);
});

void test("example pods: trusted on the default runtime, untrusted on kata-ts", () => {
  const pods = manifests("examples") as Any[];
  assert.deepEqual(
    pods.map((p) => [p.metadata.labels.trust, p.spec.runtimeClassName]),
    [
      ["trusted", undefined],
      ["untrusted", "kata-ts"],
    ],
  );
});

void test("kata-ts manifests prints a YAML stream kubectl can read; bad set is a usage error", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [cliPath, "manifests", "all"], { timeout: 30_000 });
  const docs = parseAllDocuments(stdout).map((d) => d.toJS() as Any);
  assert.deepEqual(docs.map((d) => d.kind), ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "RuntimeClass"]);
  await assert.rejects(promisify(execFile)(process.execPath, [cliPath, "manifests", "nope"], { timeout: 30_000 }), (e: Any) => e.code === 2);
});
