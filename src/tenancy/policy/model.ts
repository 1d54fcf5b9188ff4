// Derived facts about a checked policy that the webhook, the manifests and EMCO all need, so the
// defaults are decided in one place.
import type { Tenant, TenantPolicy } from "./schema.js";

export function isVmClass(policy: TenantPolicy, name: string): boolean {
  return policy.runtimeClasses[name]?.isolation === "vm";
}

/** Runtime classes the tenant may run pods with. */
export function allowedRuntimeClasses(policy: TenantPolicy, t: Tenant): string[] {
  if (t.runtimeClasses !== undefined) return [...t.runtimeClasses];
  const all = Object.keys(policy.runtimeClasses);
  return t.trust === "untrusted" ? all.filter((n) => isVmClass(policy, n)) : all;
}

/** The class the webhook sets on a tenant's pod that names none. */
export function defaultRuntimeClass(policy: TenantPolicy, t: Tenant): string {
  return t.defaultRuntimeClass ?? policy.defaultVmRuntimeClass;
}

export class TenantIndex {
  private readonly byNamespace = new Map<string, Tenant>();

  constructor(readonly policy: TenantPolicy) {
    for (const t of policy.tenants) for (const ns of t.namespaces) this.byNamespace.set(ns, t);
  }

  tenantOf(namespace: string): Tenant | undefined {
    return this.byNamespace.get(namespace);
  }

  untrustedNamespaces(): string[] {
    return this.policy.tenants.filter((t) => t.trust === "untrusted").flatMap((t) => t.namespaces);
  }
}
