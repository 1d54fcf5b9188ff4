// Loading a tenant policy: YAML -> schema -> cross-field rules, with every problem reported as
// "file:line:col: key.path: what is wrong", all at once, so one run fixes a file.
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument, isNode, type Document } from "yaml";
import type { z } from "zod";
import { KataError } from "../../util/errors.js";
import { policySchema, type TenantPolicy } from "./schema.js";
import { crossCheck } from "./rules.js";

export interface PolicyIssue {
  file: string;
  line?: number;
  column?: number;
  /** Key path as written in the file, e.g. tenants[1].namespaces[0] */
  path: string;
  message: string;
}

export class PolicyError extends KataError {
  readonly issues: readonly PolicyIssue[];

  constructor(file: string, issues: PolicyIssue[]) {
    const lines = issues.map(formatIssue);
    super("INVALID_ARGUMENT", `invalid tenant policy ${file}:\n  ${lines.join("\n  ")}`);
    this.issues = issues;
  }
}

export function formatIssue(i: PolicyIssue): string {
  const where = i.line === undefined ? i.file : `${i.file}:${i.line}:${i.column ?? 1}`;
  return `${where}: ${i.path === "" ? "(top level)" : i.path}: ${i.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** Line/column of the deepest node of `path` that exists in the document. */
function locate(doc: Document, lc: LineCounter, path: readonly PropertyKey[]): { line: number; column: number } | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return undefined;
}

function zodIssues(issues: readonly z.core.$ZodIssue[]): { path: PropertyKey[]; message: string }[] {
  const out: { path: PropertyKey[]; message: string }[] = [];
  for (const i of issues) {
    if (i.code === "unrecognized_keys") {
      for (const k of i.keys) out.push({ path: [...i.path, k], message: "unknown key (check the spelling; see docs/tenancy.md)" });
    } else {
      out.push({ path: [...i.path], message: i.message });
    }
  }
  return out;
}

/** Parses and checks a policy from text; `file` names it in errors. */
export function parsePolicy(text: string, file: string): TenantPolicy {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new PolicyError(
      file,
      doc.errors.map((e) => ({ file, line: e.linePos?.[0].line, column: e.linePos?.[0].col, path: "", message: `YAML: ${e.message.split("\n")[0]}` })),
    );
  }
  const raw: unknown = doc.toJS();
  const toIssue = (p: { path: PropertyKey[]; message: string }): PolicyIssue => ({
    file,
    ...locate(doc, lc, p.path),
    path: formatPath(p.path),
    message: p.message,
  });
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) throw new PolicyError(file, zodIssues(parsed.error.issues).map(toIssue));
  const problems = crossCheck(parsed.data);
  if (problems.length > 0) throw new PolicyError(file, problems.map(toIssue));
  return parsed.data;
}

/** A policy file's checked content and its text (the webhook's ConfigMap carries the text as is). */
export async function readPolicyFile(file: string): Promise<{ policy: TenantPolicy; text: string }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new KataError("NOT_FOUND", `cannot read tenant policy ${file}: ${(err as Error).message}`, { cause: err });
  }
  return { policy: parsePolicy(text, file), text };
}

export async function loadPolicy(file: string): Promise<TenantPolicy> {
  return (await readPolicyFile(file)).policy;
}
