// Validation of Kubernetes manifests against the API's OpenAPI schemas, strictly: types, enums,
// required fields and formats come from the schemas compiled into kubernetes-models; unknown
// fields (which the API server would silently drop, hiding a typo) are errors too (./strict.ts).
// Used by the tenancy manifests and the node installer's RuntimeClass/DaemonSet.
import { trackReads } from "./strict.js";

export interface ManifestError {
  /** "Kind/namespace/name" (or what is known of it) of the object in error. */
  object: string;
  /** JSON Pointer inside the object, "" for the object itself. */
  path: string;
  message: string;
}

interface ModelClass {
  apiVersion?: string;
  kind?: string;
  prototype: { validate(this: unknown): void };
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params?: Record<string, unknown>;
}

const NAME = /^[A-Za-z0-9.-]+$/;
const modelCache = new Map<string, Promise<ModelClass | undefined>>();

/** kubernetes-models lays models out as <group>/<version>/<Kind>, core as v1/<Kind>. */
function loadModel(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  const key = `${apiVersion}/${kind}`;
  let p = modelCache.get(key);
  if (p === undefined) {
    p = import(`kubernetes-models/${key}`).then(
      (mod: Record<string, unknown>) => {
        const cls = mod[kind] as ModelClass | undefined;
        // Only top-level kinds carry apiVersion/kind; "v1/Container" is a type, not a kind.
        return cls !== undefined && cls.apiVersion === apiVersion && cls.kind === kind ? cls : undefined;
      },
      () => undefined,
    );
    modelCache.set(key, p);
  }
  return p;
}

function describeObject(obj: Record<string, unknown>): string {
  const meta = (typeof obj.metadata === "object" && obj.metadata !== null ? obj.metadata : {}) as Record<string, unknown>;
  const parts = [typeof obj.kind === "string" ? obj.kind : "<no kind>"];
  if (typeof meta.namespace === "string") parts.push(meta.namespace);
  parts.push(typeof meta.name === "string" ? meta.name : "<no name>");
  return parts.join("/");
}

function ajvMessage(e: AjvError): string {
  if (e.keyword === "enum" && Array.isArray(e.params?.allowedValues)) {
    return `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if (e.keyword === "required") return `missing required field "${String(e.params?.missingProperty)}"`;
  return e.message ?? e.keyword;
}

/** Every problem with one manifest; an empty list means the API server's schema accepts it. */
export async function validateManifest(obj: unknown): Promise<ManifestError[]> {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    return [{ object: "<not an object>", path: "", message: "a manifest must be a JSON/YAML object" }];
  }
  const o = obj as Record<string, unknown>;
  const object = describeObject(o);
  const { apiVersion, kind } = o;
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !NAME.test(kind) || !/^[A-Za-z0-9./-]+$/.test(apiVersion)) {
    return [{ object, path: "", message: "apiVersion and kind must be set" }];
  }
  const model = await loadModel(apiVersion, kind);
  if (model === undefined) {
    return [{ object, path: "/kind", message: `unknown kind ${kind} in ${apiVersion}` }];
  }
  const errors: ManifestError[] = [];
  const tracked = trackReads(obj);
  try {
    model.prototype.validate.call(tracked.proxy);
  } catch (err) {
    const list = (err as { errors?: AjvError[] }).errors;
    if (!Array.isArray(list)) throw err;
    for (const e of list) errors.push({ object, path: e.instancePath, message: ajvMessage(e) });
  }
  for (const u of tracked.unknownFields()) errors.push({ object, path: u.path, message: "unknown field" });
  return errors;
}

/** Validates a list of manifests; the errors of all of them, in order. */
export async function validateManifests(objs: readonly unknown[]): Promise<ManifestError[]> {
  const out: ManifestError[] = [];
  for (const o of objs) out.push(...(await validateManifest(o)));
  return out;
}

export function formatManifestError(e: ManifestError): string {
  return `${e.object}: ${e.path === "" ? "" : `${e.path}: `}${e.message}`;
}
