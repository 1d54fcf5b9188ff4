// What the policy says about one pod of an untrusted tenant: the patch that moves it into a VM,
// and the reasons it must be refused. Pure functions over the pod JSON (no Kubernetes types:
// the webhook must judge whatever it is sent, including pods with fields it has never seen).
import { allowedRuntimeClasses, defaultRuntimeClass, isVmClass } from "../policy/model.js";
import type { Tenant, TenantPolicy } from "../policy/schema.js";
import type { JsonPatchOp } from "./review.js";

type Obj = Record<string, unknown>;

const HOST_NAMESPACES = [
  ["hostNetwork", "network"],
  ["hostPID", "process (PID)"],
  ["hostIPC", "IPC"],
] as const;

function asObj(v: unknown): Obj | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

function asList(v: unknown): Obj[] {
  return Array.isArray(v) ? v.map(asObj).filter((o): o is Obj => o !== undefined) : [];
}

export function podSpec(pod: unknown): Obj | undefined {
  return asObj(asObj(pod)?.spec);
}

function runtimeClassOf(spec: Obj): string | undefined {
  const rc = spec.runtimeClassName;
  return typeof rc === "string" && rc !== "" ? rc : undefined;
}

function escapePointer(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export interface Mutation {
  patch: JsonPatchOp[];
  runtimeClass?: string;
  /** Set when the pod cannot be moved into the class (its nodeSelector contradicts the class's). */
  conflict?: string;
}

/**
 * The JSONPatch that gives a pod with no runtime class the tenant's default (VM) class. The API
 * server's RuntimeClass admission plugin ran before this webhook and saw no class, so it neither
 * set the pod overhead nor merged the class's scheduling; its validation (after us) rejects a pod
 * whose overhead differs from the class's. So the patch carries both, as the plugin would have.
 */
export function mutationFor(pod: unknown, policy: TenantPolicy, tenant: Tenant): Mutation {
  const spec = podSpec(pod);
  if (spec === undefined || runtimeClassOf(spec) !== undefined) return { patch: [] };
  const rc = defaultRuntimeClass(policy, tenant);
  const decl = policy.runtimeClasses[rc];
  // "add" replaces an existing member too (RFC 6902 4.1), which covers runtimeClassName: null.
  const patch: JsonPatchOp[] = [{ op: "add", path: "/spec/runtimeClassName", value: rc }];
  if (decl?.overhead !== undefined && (spec.overhead === undefined || spec.overhead === null)) {
    patch.push({ op: "add", path: "/spec/overhead", value: { cpu: decl.overhead.cpu, memory: decl.overhead.memory } });
  }
  const selector = decl?.scheduling?.nodeSelector ?? {};
  const podSelector = asObj(spec.nodeSelector);
  if (Object.keys(selector).length > 0) {
    if (podSelector === undefined) {
      patch.push({ op: "add", path: "/spec/nodeSelector", value: { ...selector } });
    } else {
      for (const [k, v] of Object.entries(selector)) {
        if (podSelector[k] === undefined) patch.push({ op: "add", path: `/spec/nodeSelector/${escapePointer(k)}`, value: v });
        else if (podSelector[k] !== v) {
          return { patch: [], runtimeClass: rc, conflict: `nodeSelector ${k}=${String(podSelector[k])} conflicts with runtime class "${rc}" (${k}=${v})` };
        }
      }
    }
  }
  const tolerations = decl?.scheduling?.tolerations ?? [];
  if (tolerations.length > 0) {
    const have = Array.isArray(spec.tolerations) ? (spec.tolerations as unknown[]) : undefined;
    if (have === undefined) patch.push({ op: "add", path: "/spec/tolerations", value: [...tolerations] });
    else for (const t of tolerations) if (!have.some((h) => sameJson(h, t))) patch.push({ op: "add", path: "/spec/tolerations/-", value: t });
  }
  return { patch, runtimeClass: rc };
}

function privilegedViolations(kind: string, containers: Obj[]): string[] {
  const out: string[] = [];
  for (const c of containers) {
    if (asObj(c.securityContext)?.privileged === true) {
      out.push(`${kind} "${String(c.name ?? "?")}" is privileged (securityContext.privileged: true)`);
    }
  }
  return out;
}

/** Ephemeral (debug) containers only: what the pods/ephemeralcontainers subresource can add. */
export function ephemeralViolations(pod: unknown): string[] {
  return privilegedViolations("ephemeral container", asList(podSpec(pod)?.ephemeralContainers));
}

/** Every reason an untrusted tenant's pod must be refused; empty when it may run. */
export function podViolations(pod: unknown, policy: TenantPolicy, tenant: Tenant): string[] {
  const spec = podSpec(pod);
  if (spec === undefined) return ["the object is not a Pod with a spec"];
  const out: string[] = [];
  const allowed = allowedRuntimeClasses(policy, tenant);
  const rc = runtimeClassOf(spec);
  if (rc === undefined) {
    out.push(`runtimeClassName is not set (allowed: ${allowed.join(", ")})`);
  } else if (!isVmClass(policy, rc)) {
    out.push(`runtimeClassName "${rc}" does not run the pod in a VM (allowed: ${allowed.join(", ")})`);
  } else if (!allowed.includes(rc)) {
    out.push(`runtimeClassName "${rc}" is not allowed for this tenant (allowed: ${allowed.join(", ")})`);
  }
  for (const [field, what] of HOST_NAMESPACES) {
    if (spec[field] === true) out.push(`spec.${field} is true (shares the node's ${what} namespace)`);
  }
  out.push(...privilegedViolations("container", asList(spec.containers)));
  out.push(...privilegedViolations("init container", asList(spec.initContainers)));
  out.push(...privilegedViolations("ephemeral container", asList(spec.ephemeralContainers)));
  for (const v of asList(spec.volumes)) {
    if (v.hostPath !== undefined && v.hostPath !== null) out.push(`volume "${String(v.name ?? "?")}" is a hostPath volume`);
  }
  return out;
}
