// One tenant's Kubernetes objects, per namespace: the Namespace (tenant labels; Pod Security
// "baseline" enforced for untrusted tenants as a second lock behind the webhook), ResourceQuota,
// LimitRange, default-deny + same-tenant NetworkPolicies, and the tenant admins' RoleBinding.
import { defaultRuntimeClass } from "../policy/model.js";
import type { Tenant, TenantPolicy } from "../policy/schema.js";
import { formatBytes, formatMilliCpu, toBytes, toMilliCpu } from "../quantity.js";
import {
  ANNOTATION_DEFAULT_PODS,
  ANNOTATION_OVERHEAD,
  LABEL_MANAGED_BY,
  LABEL_NAMESPACE_NAME,
  LABEL_TENANT,
  LABEL_TRUST,
  MANAGED_BY,
} from "./labels.js";

export type Manifest = Record<string, unknown> & { apiVersion: string; kind: string };

function namespace(t: Tenant, ns: string): Manifest {
  const labels: Record<string, string> = { [LABEL_TENANT]: t.name, [LABEL_TRUST]: t.trust, [LABEL_MANAGED_BY]: MANAGED_BY };
  if (t.trust === "untrusted") {
    labels["pod-security.kubernetes.io/enforce"] = "baseline";
    labels["pod-security.kubernetes.io/warn"] = "restricted";
  }
  return { apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels } };
}

function meta(t: Tenant, ns: string, name: string, annotations?: Record<string, string>): Record<string, unknown> {
  return {
    name,
    namespace: ns,
    labels: { [LABEL_TENANT]: t.name, [LABEL_MANAGED_BY]: MANAGED_BY },
    ...(annotations === undefined ? {} : { annotations }),
  };
}

/** Hard limits; the quota admission charges each pod its requests/limits plus its RuntimeClass overhead. */
function resourceQuota(p: TenantPolicy, t: Tenant, ns: string): Manifest {
  const rc = defaultRuntimeClass(p, t);
  const overhead = p.runtimeClasses[rc]?.overhead;
  const podCpu = toMilliCpu(t.containerDefaults.cpu) + (overhead ? toMilliCpu(overhead.cpu) : 0);
  const podMem = toBytes(t.containerDefaults.memory) + (overhead ? toBytes(overhead.memory) : 0);
  const fit = Math.min(Math.floor(toMilliCpu(t.quota.cpu) / podCpu), Math.floor(toBytes(t.quota.memory) / podMem));
  const annotations: Record<string, string> = {
    [ANNOTATION_DEFAULT_PODS]: String(t.quota.pods === undefined ? fit : Math.min(fit, t.quota.pods)),
  };
  if (overhead) annotations[ANNOTATION_OVERHEAD] = `${rc}: cpu=${formatMilliCpu(toMilliCpu(overhead.cpu))} memory=${formatBytes(toBytes(overhead.memory))}`;
  const hard: Record<string, string> = {
    "requests.cpu": t.quota.cpu,
    "limits.cpu": t.quota.cpu,
    "requests.memory": t.quota.memory,
    "limits.memory": t.quota.memory,
  };
  if (t.quota.pods !== undefined) hard.pods = String(t.quota.pods);
  return { apiVersion: "v1", kind: "ResourceQuota", metadata: meta(t, ns, "tenant-quota", annotations), spec: { hard } };
}

/** Defaults for containers that set nothing, so the quota (which needs limits) admits them. */
function limitRange(t: Tenant, ns: string): Manifest {
  const d = { cpu: t.containerDefaults.cpu, memory: t.containerDefaults.memory };
  return {
    apiVersion: "v1",
    kind: "LimitRange",
    metadata: meta(t, ns, "tenant-defaults"),
    spec: { limits: [{ type: "Container", default: d, defaultRequest: d }] },
  };
}

function networkPolicies(t: Tenant, ns: string): Manifest[] {
  const sameTenant = { namespaceSelector: { matchLabels: { [LABEL_TENANT]: t.name } } };
  const extra = t.network.allowIngressFromNamespaces.map((n) => ({
    namespaceSelector: { matchLabels: { [LABEL_NAMESPACE_NAME]: n } },
  }));
  const egress: Record<string, unknown>[] = [{ to: [sameTenant] }];
  if (t.network.allowDns) {
    egress.push({
      to: [{ namespaceSelector: { matchLabels: { [LABEL_NAMESPACE_NAME]: "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
      ports: [
        { protocol: "UDP", port: 53 },
        { protocol: "TCP", port: 53 },
      ],
    });
  }
  return [
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta(t, ns, "default-deny"),
      spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
    },
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta(t, ns, "allow-same-tenant"),
      spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"], ingress: [{ from: [sameTenant, ...extra] }], egress },
    },
  ];
}

/** Tenant admins edit workloads in their namespaces; "edit" grants no RBAC, quota or namespace changes. */
function roleBinding(t: Tenant, ns: string): Manifest[] {
  if (t.admins.length === 0) return [];
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: meta(t, ns, "tenant-admins"),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "edit" },
      subjects: t.admins.map((s) =>
        s.kind === "ServiceAccount"
          ? { kind: s.kind, name: s.name, namespace: s.namespace ?? ns }
          : { kind: s.kind, name: s.name, apiGroup: "rbac.authorization.k8s.io" },
      ),
    },
  ];
}

export function tenantManifests(p: TenantPolicy, t: Tenant): Manifest[] {
  return t.namespaces.flatMap((ns) => [
    namespace(t, ns),
    resourceQuota(p, t, ns),
    limitRange(t, ns),
    ...networkPolicies(t, ns),
    ...roleBinding(t, ns),
  ]);
}
