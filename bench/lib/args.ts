// Command-line parsing for the benches: `--help` prints the usage, and a bad option or value ends
// the process with status 2 and a message naming it (instead of parseArgs' stack trace).
import { parseArgs, type ParseArgsConfig } from "node:util";

export class UsageError extends Error {}

/**
 * parseArgs (strict, no positionals); the options must include `help` (boolean). Prints the usage
 * and exits 0 on --help; prints the parse error and the usage and exits 2 on a bad option.
 */
export function parseBenchArgs<T extends ParseArgsConfig & { options: { help: { type: "boolean" } } }>(usage: string, config: T): ReturnType<typeof parseArgs<T>>["values"] {
  let values: ReturnType<typeof parseArgs<T>>["values"];
  try {
    values = parseArgs<T>({ strict: true, allowPositionals: false, ...config }).values;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS")) throw err;
    exitWithUsage(usage, (err as Error).message);
  }
  if ((values as { help?: boolean }).help === true) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

/** Print what was wrong and the usage on stderr, exit 2. */
export function exitWithUsage(usage: string, problem: string): never {
  console.error(`${problem}\n\n${usage}`);
  process.exit(2);
}

/** A whole number >= min from an option's text, or a UsageError naming the option. */
export function intOption(name: string, text: string, min: number): number {
  const n = text.trim() === "" ? Number.NaN : Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}

/** A number >= min (fractions allowed, e.g. seconds) from an option's text, or a UsageError naming the option. */
export function numberOption(name: string, text: string, min: number): number {
  const n = text.trim() === "" ? Number.NaN : Number(text);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}

/** A whole number >= min from an environment variable, undefined when it is unset, or a UsageError naming it. */
export function intEnv(name: string, min: number): number | undefined {
  const text = process.env[name];
  if (text === undefined) return undefined;
  const n = text.trim() === "" ? Number.NaN : Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}

/** Runs the option checks; a UsageError becomes the message plus the usage and exit status 2. */
export function checkOptions<T>(usage: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof UsageError) exitWithUsage(usage, err.message);
    throw err;
  }
}
