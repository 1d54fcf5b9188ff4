// The two admission decisions. Mutating: an untrusted tenant's new pod without a runtime class
// gets the tenant's VM class. Validating: an untrusted tenant's pod that would share the node's
// kernel or host resources is refused, with every reason. Everything else passes unchanged.
import { defaultRuntimeClass } from "../policy/model.js";
import type { TenantIndex } from "../policy/model.js";
import { ephemeralViolations, mutationFor, podViolations } from "./pod.js";
import type { AdmissionDecision, AdmissionRequest } from "./review.js";

export type AdmissionMode = "mutate" | "validate";

const ALLOW: AdmissionDecision = { allowed: true };

function isPod(req: AdmissionRequest): boolean {
  return req.kind.group === "" && req.kind.kind === "Pod" && req.resource.resource === "pods";
}

export function admit(mode: AdmissionMode, req: AdmissionRequest, index: TenantIndex): AdmissionDecision {
  if (!isPod(req) || req.namespace === undefined) return ALLOW;
  const tenant = index.tenantOf(req.namespace);
  if (tenant === undefined || tenant.trust !== "untrusted") return ALLOW;
  const policy = index.policy;
  const sub = req.subResource ?? "";

  if (mode === "mutate") {
    if (req.operation !== "CREATE" || sub !== "") return ALLOW;
    const { patch, runtimeClass, conflict } = mutationFor(req.object, policy, tenant);
    if (conflict !== undefined) {
      return { allowed: false, message: `kata-ts tenancy: pod refused in namespace "${req.namespace}" (tenant "${tenant.name}" is untrusted and must run in a VM): ${conflict}` };
    }
    if (patch.length === 0) return ALLOW;
    return {
      allowed: true,
      patch,
      warnings: [`kata-ts tenancy: runtimeClassName set to "${runtimeClass ?? defaultRuntimeClass(policy, tenant)}" (tenant "${tenant.name}" is untrusted)`],
    };
  }

  let reasons: string[];
  if (req.operation === "CREATE" && sub === "") reasons = podViolations(req.object, policy, tenant);
  else if (req.operation === "UPDATE" && sub === "ephemeralcontainers") reasons = ephemeralViolations(req.object);
  // Other pod updates cannot change the fields judged here (they are immutable after creation).
  else return ALLOW;
  if (reasons.length === 0) return ALLOW;
  return {
    allowed: false,
    message:
      `kata-ts tenancy: pod refused in namespace "${req.namespace}" (tenant "${tenant.name}" is untrusted and must run in a VM ` +
      `without host access): ${reasons.join("; ")}`,
  };
}
