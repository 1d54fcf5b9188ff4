// QEMU's "-opt key=value,key=value" syntax, rendered from typed records so that no command line is
// built by string concatenation at the call sites. QEMU doubles a comma inside a value to escape it.
import { KataError } from "../../../util/errors.js";

export type OptValue = string | number | boolean;

function renderValue(key: string, value: OptValue): string {
  const text = typeof value === "boolean" ? (value ? "on" : "off") : String(value);
  if (/[\n\0]/.test(text)) throw new KataError("INVALID_ARGUMENT", `QEMU option ${key} has a newline or NUL in its value: ${JSON.stringify(text)}`);
  return text.replaceAll(",", ",,");
}

/** `head,k1=v1,k2=v2` with undefined entries left out, e.g. qemuOpts("microvm", { acpi: true }). */
export function qemuOpts(head: string | undefined, props: Record<string, OptValue | undefined>): string {
  const parts = head === undefined ? [] : [head];
  for (const [key, value] of Object.entries(props)) {
    if (value !== undefined) parts.push(`${key}=${renderValue(key, value)}`);
  }
  return parts.join(",");
}
