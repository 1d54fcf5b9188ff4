// Rules across fields that a schema cannot express: references resolve, namespaces belong to one
// tenant, untrusted tenants only get VM runtime classes, and a default-sized pod, VM overhead
// included, fits in the tenant's quota.
import { formatBytes, formatMilliCpu, toBytes, toMilliCpu } from "../quantity.js";
import { allowedRuntimeClasses, defaultRuntimeClass, isVmClass } from "./model.js";
import type { TenantPolicy } from "./schema.js";

export interface RuleProblem {
  path: PropertyKey[];
  message: string;
}

const RESERVED_NAMESPACES = new Set(["kube-system", "kube-public", "kube-node-lease", "default"]);

export function crossCheck(p: TenantPolicy): RuleProblem[] {
  const out: RuleProblem[] = [];
  const classes = Object.keys(p.runtimeClasses);
  if (!isVmClass(p, p.defaultVmRuntimeClass)) {
    out.push({
      path: ["defaultVmRuntimeClass"],
      message: `"${p.defaultVmRuntimeClass}" must be declared under runtimeClasses with isolation: vm (declared: ${classes.join(", ") || "none"})`,
    });
  }
  const owner = new Map<string, string>();
  const names = new Set<string>();
  p.tenants.forEach((t, ti) => {
    if (names.has(t.name)) out.push({ path: ["tenants", ti, "name"], message: `tenant "${t.name}" is declared twice` });
    names.add(t.name);
    t.namespaces.forEach((ns, ni) => {
      const path = ["tenants", ti, "namespaces", ni];
      const prev = owner.get(ns);
      if (prev !== undefined) out.push({ path, message: `namespace "${ns}" already belongs to tenant "${prev}"` });
      else owner.set(ns, t.name);
      if (RESERVED_NAMESPACES.has(ns) || ns === p.webhook.namespace) {
        out.push({ path, message: `namespace "${ns}" is a system namespace and cannot belong to a tenant` });
      }
    });
    (t.runtimeClasses ?? []).forEach((rc, ri) => {
      const path = ["tenants", ti, "runtimeClasses", ri];
      if (p.runtimeClasses[rc] === undefined) {
        out.push({ path, message: `runtime class "${rc}" is not declared under runtimeClasses (declared: ${classes.join(", ")})` });
      } else if (t.trust === "untrusted" && !isVmClass(p, rc)) {
        out.push({ path, message: `"${rc}" does not isolate with a VM (isolation: none); an untrusted tenant may only use VM runtime classes` });
      }
    });
    const allowed = allowedRuntimeClasses(p, t);
    const def = defaultRuntimeClass(p, t);
    const defPath = t.defaultRuntimeClass === undefined ? ["defaultVmRuntimeClass"] : ["tenants", ti, "defaultRuntimeClass"];
    if (!allowed.includes(def)) {
      out.push({ path: defPath, message: `tenant "${t.name}" defaults to "${def}", which is not among its runtime classes (${allowed.join(", ") || "none"})` });
    } else if (t.trust === "untrusted" && !isVmClass(p, def)) {
      out.push({ path: defPath, message: `an untrusted tenant's default runtime class must be a VM class, "${def}" is not` });
    }
    // Kubernetes charges a pod its containers' requests plus the RuntimeClass overhead.
    const overhead = p.runtimeClasses[def]?.overhead;
    const cpuNeed = toMilliCpu(t.containerDefaults.cpu) + (overhead ? toMilliCpu(overhead.cpu) : 0);
    const memNeed = toBytes(t.containerDefaults.memory) + (overhead ? toBytes(overhead.memory) : 0);
    if (toMilliCpu(t.quota.cpu) < cpuNeed) {
      out.push({
        path: ["tenants", ti, "quota", "cpu"],
        message: `${t.quota.cpu} cannot fit one default pod: container default ${t.containerDefaults.cpu} + ${def} overhead ${overhead?.cpu ?? "0"} = ${formatMilliCpu(cpuNeed)}`,
      });
    }
    if (toBytes(t.quota.memory) < memNeed) {
      out.push({
        path: ["tenants", ti, "quota", "memory"],
        message: `${t.quota.memory} cannot fit one default pod: container default ${t.containerDefaults.memory} + ${def} overhead ${overhead?.memory ?? "0"} = ${formatBytes(memNeed)}`,
      });
    }
    if (t.emco !== undefined && p.emco === undefined) {
      out.push({ path: ["tenants", ti, "emco"], message: "tenant EMCO settings need a top-level emco section (clusterProvider, clusters)" });
    }
    if (t.emco?.namespace !== undefined && !t.namespaces.includes(t.emco.namespace)) {
      out.push({ path: ["tenants", ti, "emco", "namespace"], message: `"${t.emco.namespace}" is not one of the tenant's namespaces` });
    }
  });
  return out;
}
