// TOML text -> validated KataConfig. Errors name the file, the key and the problem, e.g.
// `/etc/kata-ts/configuration.toml: hypervisor.qemu.default_vcpus: expected int, received string`.
import { parse as parseToml, TomlError } from "smol-toml";
import type { z } from "zod";
import { KataError } from "../util/errors.js";
import { configSchema, type KataConfig } from "./schema.js";

export function parseConfig(text: string, file: string): KataConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? `line ${err.line}, column ${err.column}` : "TOML";
    const what = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new KataError("INVALID_ARGUMENT", `${file}: ${where}: not valid TOML: ${what}`, { cause: err });
  }
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => describeIssue(file, issue));
  throw new KataError("INVALID_ARGUMENT", `${problems.join("; ")} (see docs/configuration.md)`, { cause: result.error });
}

function describeIssue(file: string, issue: z.core.$ZodIssue): string {
  const at = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    const keys = issue.keys.map((k) => [...at, k].join("."));
    return `${file}: ${keys.join(", ")}: unknown key${keys.length > 1 ? "s" : ""}`;
  }
  const key = at.length > 0 ? at.join(".") : "(top level)";
  return `${file}: ${key}: ${issue.message}`;
}
