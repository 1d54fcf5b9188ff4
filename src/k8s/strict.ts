// Unknown-field detection for Kubernetes objects, on top of the OpenAPI validators that
// kubernetes-models ships (precompiled Ajv code that checks types, enums and required fields,
// but lets unknown keys through, as the API server's non-strict decoding does).
//
// How: the object is validated through a read-tracking Proxy. A compiled validator reads every
// property its schema declares (`data.x === undefined || check(data.x)`), and enumerates the keys
// of free-form maps (labels, annotations, quota `hard`). So, for each object the validator looked
// into, any own key it never read is a field the schema does not know: a typo. Objects the
// validator never looked into at all (schemaless fields such as RawExtension) are not judged.

export interface UnknownField {
  /** JSON Pointer of the unknown key, e.g. /spec/template/spec/containres */
  path: string;
}

interface Seen {
  target: Record<string, unknown>;
  path: string;
  read: Set<string>;
  enumerated: boolean;
}

function escapePointer(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

/** Wraps `root` so that reads are recorded; call `unknownFields()` after validating the proxy. */
export function trackReads(root: unknown): { proxy: unknown; unknownFields: () => UnknownField[] } {
  const seen: Seen[] = [];
  const proxies = new WeakMap<object, unknown>();

  const wrap = (value: unknown, path: string): unknown => {
    if (!isObject(value)) return value;
    const cached = proxies.get(value);
    if (cached !== undefined) return cached;
    const entry: Seen = { target: value, path, read: new Set(), enumerated: false };
    if (!Array.isArray(value)) seen.push(entry);
    const proxy = new Proxy(value, {
      get(target, prop, receiver) {
        const child: unknown = Reflect.get(target, prop, receiver);
        if (typeof prop !== "string") return child;
        entry.read.add(prop);
        if (!Object.prototype.hasOwnProperty.call(target, prop)) return child;
        return wrap(child, `${path}/${escapePointer(prop)}`);
      },
      // Validators compiled with other options test presence with `in` or hasOwnProperty.
      has(target, prop) {
        if (typeof prop === "string") entry.read.add(prop);
        return Reflect.has(target, prop);
      },
      getOwnPropertyDescriptor(target, prop) {
        if (typeof prop === "string") entry.read.add(prop);
        return Reflect.getOwnPropertyDescriptor(target, prop);
      },
      ownKeys(target) {
        entry.enumerated = true;
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };

  const proxy = wrap(root, "");
  const unknownFields = (): UnknownField[] => {
    const out: UnknownField[] = [];
    for (const s of seen) {
      // Never looked into (schemaless), or treated as a map: nothing to judge.
      if (s.read.size === 0 || s.enumerated) continue;
      for (const key of Object.keys(s.target)) {
        if (!s.read.has(key)) out.push({ path: `${s.path}/${escapePointer(key)}` });
      }
    }
    return out;
  };
  return { proxy, unknownFields };
}
