// Multi-cluster placement as EMCO models it. Per tenant: a project; a logical cloud (the tenant's
// namespace on each cluster it may use) with its user permission, cluster quotas and cluster
// references; and, per tenant app, a generic placement intent selecting the clusters labelled
// kata-ts capable plus a generic action (GAC) intent whose JSON patch sets runtimeClassName on the
// app's pod templates. Rendered as emcoctl documents (version emco/v2, resourceContext.anchor)
// or as the equivalent v2 REST calls (POST /v2/<anchor> with metadata/spec).
import { stringify } from "yaml";
import { KataError } from "../util/errors.js";
import { defaultRuntimeClass, isVmClass } from "./policy/model.js";
import type { Tenant, TenantPolicy } from "./policy/schema.js";

export interface EmcoResource {
  anchor: string;
  metadata?: { name: string; description?: string };
  spec?: Record<string, unknown>;
  /** Fields that sit beside metadata/spec (cluster labels are just { clusterLabel }). */
  body?: Record<string, unknown>;
}

const WORKLOAD: Record<string, { apiVersion: string; podSpec: string }> = {
  Deployment: { apiVersion: "apps/v1", podSpec: "/spec/template/spec" },
  StatefulSet: { apiVersion: "apps/v1", podSpec: "/spec/template/spec" },
  DaemonSet: { apiVersion: "apps/v1", podSpec: "/spec/template/spec" },
  Job: { apiVersion: "batch/v1", podSpec: "/spec/template/spec" },
  CronJob: { apiVersion: "batch/v1", podSpec: "/spec/jobTemplate/spec/template/spec" },
  Pod: { apiVersion: "v1", podSpec: "/spec" },
};

function tenantResources(p: TenantPolicy, emco: NonNullable<TenantPolicy["emco"]>, t: Tenant): EmcoResource[] {
  const project = t.emco?.project ?? t.name;
  const cloud = `${t.name}-cloud`;
  const namespace = t.emco?.namespace ?? t.namespaces[0] ?? t.name;
  const rc = defaultRuntimeClass(p, t);
  const vm = isVmClass(p, rc);
  const clusters = emco.clusters.filter((c) => !vm || c.kataTs);
  if (vm && clusters.length === 0) {
    throw new KataError("FAILED_PRECONDITION", `tenant "${t.name}" needs a kata-ts capable cluster, and emco.clusters marks none with kataTs: true`);
  }
  const lc = `projects/${project}/logical-clouds`;
  const quota: Record<string, string> = {
    "requests.cpu": t.quota.cpu,
    "limits.cpu": t.quota.cpu,
    "requests.memory": t.quota.memory,
    "limits.memory": t.quota.memory,
  };
  if (t.quota.pods !== undefined) quota.pods = String(t.quota.pods);

  const out: EmcoResource[] = [
    { anchor: "projects", metadata: { name: project, description: `kata-ts tenant ${t.name} (${t.trust})` } },
    { anchor: lc, metadata: { name: cloud }, spec: { namespace, user: { userName: `${t.name}-user`, type: "certificate" } } },
    {
      anchor: `${lc}/${cloud}/user-permissions`,
      metadata: { name: `${t.name}-permission` },
      spec: { namespace, apiGroups: ["", "apps", "batch", "networking.k8s.io"], resources: ["*"], verbs: ["*"] },
    },
    { anchor: `${lc}/${cloud}/cluster-quotas`, metadata: { name: `${t.name}-quota` }, spec: quota },
    ...clusters.map((c) => ({
      anchor: `${lc}/${cloud}/cluster-references`,
      metadata: { name: `${c.name}-ref` },
      spec: { clusterProvider: emco.clusterProvider, cluster: c.name, loadbalancerIp: "0.0.0.0" },
    })),
  ];

  for (const app of t.emco?.apps ?? []) {
    const dig = `projects/${project}/composite-apps/${app.compositeApp}/${app.version}/deployment-intent-groups/${app.deploymentIntentGroup}`;
    const placement = `${app.app}-placement`;
    const gac = `${app.app}-runtime-class`;
    const allOf = vm
      ? [{ clusterProvider: emco.clusterProvider, clusterLabel: emco.clusterLabel }]
      : clusters.map((c) => ({ clusterProvider: emco.clusterProvider, cluster: c.name }));
    out.push(
      { anchor: `${dig}/generic-placement-intents`, metadata: { name: placement, description: "clusters whose nodes run kata-ts" } },
      { anchor: `${dig}/generic-placement-intents/${placement}/app-intents`, metadata: { name: `${app.app}-clusters` }, spec: { app: app.app, intent: vm ? { allOf } : { anyOf: allOf } } },
    );
    // A tenant that runs on the node's kernel needs no runtime class set.
    if (vm) out.push({ anchor: `${dig}/generic-k8s-intents`, metadata: { name: gac, description: `runtimeClassName ${rc} on ${app.app}'s pods` } });
    for (const w of vm ? app.workloads : []) {
      const kind = WORKLOAD[w.kind];
      if (kind === undefined) continue; // unreachable: the schema restricts kinds
      const resource = `${w.kind.toLowerCase()}-${w.name}`;
      out.push(
        {
          anchor: `${dig}/generic-k8s-intents/${gac}/resources`,
          metadata: { name: resource },
          spec: { app: app.app, newObject: "false", resourceGVK: { apiVersion: kind.apiVersion, kind: w.kind, name: w.name } },
        },
        {
          anchor: `${dig}/generic-k8s-intents/${gac}/resources/${resource}/customizations`,
          metadata: { name: `${resource}-runtime-class` },
          spec: {
            clusterSpecific: "false",
            clusterInfo: { scope: "label", clusterProvider: emco.clusterProvider, cluster: "", clusterLabel: emco.clusterLabel, mode: "allow" },
            patchType: "json",
            patchJson: [{ op: "add", path: `${kind.podSpec}/runtimeClassName`, value: rc }],
          },
        },
      );
    }
    out.push({
      anchor: `${dig}/intents`,
      metadata: { name: `${app.app}-kata-ts-intents` },
      spec: { intent: vm ? { genericPlacementIntent: placement, [emco.gacController]: gac } : { genericPlacementIntent: placement } },
    });
  }
  return out;
}

/** All EMCO resources for the policy, in creation order (parents before children). */
export function buildEmcoResources(p: TenantPolicy): EmcoResource[] {
  const emco = p.emco;
  if (emco === undefined) {
    throw new KataError("FAILED_PRECONDITION", "the policy has no emco section (clusterProvider, clusters): nothing to place");
  }
  const labels: EmcoResource[] = emco.clusters
    .filter((c) => c.kataTs)
    .map((c) => ({ anchor: `cluster-providers/${emco.clusterProvider}/clusters/${c.name}/labels`, body: { clusterLabel: emco.clusterLabel } }));
  return [...labels, ...p.tenants.flatMap((t) => tenantResources(p, emco, t))];
}

/** emcoctl's input: one YAML document per resource, for `emcoctl apply -f`. */
export function renderEmcoctl(resources: readonly EmcoResource[]): string {
  return resources
    .map((r) => {
      const doc: Record<string, unknown> = { version: "emco/v2", resourceContext: { anchor: r.anchor } };
      if (r.metadata) doc.metadata = r.metadata;
      if (r.spec) doc.spec = r.spec;
      Object.assign(doc, r.body);
      return stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false });
    })
    .join("---\n");
}

/** The same resources as v2 REST calls. */
export function renderRest(resources: readonly EmcoResource[]): { method: "POST"; path: string; body: Record<string, unknown> }[] {
  return resources.map((r) => ({
    method: "POST" as const,
    path: `/v2/${r.anchor}`,
    body: { ...(r.metadata ? { metadata: r.metadata } : {}), ...(r.spec ? { spec: r.spec } : {}), ...r.body },
  }));
}
