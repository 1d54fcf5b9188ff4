// AdmissionReview v1 (admission.k8s.io/v1) on the wire: the part of a request the webhook reads,
// checked so that a malformed review gets a 400 with the reason instead of a guess, and the
// response shape the API server expects (patch as base64 JSONPatch).
import { z } from "zod";

export const ADMISSION_API_VERSION = "admission.k8s.io/v1";

const groupVersionKind = z.looseObject({ group: z.string(), version: z.string(), kind: z.string() });
const groupVersionResource = z.looseObject({ group: z.string(), version: z.string(), resource: z.string() });

const reviewSchema = z.looseObject({
  apiVersion: z.literal(ADMISSION_API_VERSION),
  kind: z.literal("AdmissionReview"),
  request: z.looseObject({
    uid: z.string().min(1),
    kind: groupVersionKind,
    resource: groupVersionResource,
    subResource: z.string().optional(),
    namespace: z.string().optional(),
    name: z.string().optional(),
    operation: z.enum(["CREATE", "UPDATE", "DELETE", "CONNECT"]),
    object: z.unknown().optional(),
    oldObject: z.unknown().optional(),
    dryRun: z.boolean().optional(),
  }),
});

export type AdmissionRequest = z.output<typeof reviewSchema>["request"];

export interface JsonPatchOp {
  op: "add" | "replace" | "remove";
  path: string;
  value?: unknown;
}

export interface AdmissionDecision {
  allowed: boolean;
  /** Why a request was denied; shown to the user by kubectl. */
  message?: string;
  patch?: JsonPatchOp[];
  warnings?: string[];
}

export type ParsedReview = { ok: true; request: AdmissionRequest } | { ok: false; reason: string };

/** Parses a request body; never throws. */
export function parseReview(body: string): ParsedReview {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    return { ok: false, reason: `body is not JSON: ${(err as Error).message}` };
  }
  const r = reviewSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    const at = i === undefined || i.path.length === 0 ? "" : `${i.path.join(".")}: `;
    return { ok: false, reason: `not an admission.k8s.io/v1 AdmissionReview request: ${at}${i?.message ?? "invalid"}` };
  }
  return { ok: true, request: r.data.request };
}

/** The AdmissionReview the API server expects back. */
export function reviewResponse(uid: string, d: AdmissionDecision): object {
  const response: Record<string, unknown> = { uid, allowed: d.allowed };
  if (!d.allowed) response.status = { code: 403, reason: "Forbidden", message: d.message ?? "denied" };
  if (d.allowed && d.patch !== undefined && d.patch.length > 0) {
    response.patchType = "JSONPatch";
    response.patch = Buffer.from(JSON.stringify(d.patch)).toString("base64");
  }
  if (d.warnings !== undefined && d.warnings.length > 0) response.warnings = d.warnings;
  return { apiVersion: ADMISSION_API_VERSION, kind: "AdmissionReview", response };
}
