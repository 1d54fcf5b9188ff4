// Running host tools: always with a timeout, never through a shell, and with errors that name
// the command that failed and what it printed.
import { execFile } from "node:child_process";
import { KataError } from "./errors.js";

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve with the output even when the command exits non-zero (it still rejects if it cannot start). */
  allowNonZero?: boolean;
}

export function run(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, env: opts.env, cwd: opts.cwd, encoding: "utf8" },
      (err, stdout, stderr) => {
        const exited = err !== null && typeof (err as { code?: unknown }).code === "number";
        if (err && !(opts.allowNonZero && exited)) {
          const what = `${file} ${args.join(" ")}`.trim();
          const detail = (stderr || stdout || err.message).trim().split("\n").slice(-5).join("\n");
          const code = (err as NodeJS.ErrnoException).code === "ENOENT" ? "NOT_FOUND" : "INTERNAL";
          reject(new KataError(code, `${what} failed: ${detail}`, { cause: err }));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run(), but answers undefined instead of throwing: for probes where absence is an answer. */
export async function tryRun(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult | undefined> {
  try {
    return await run(file, args, opts);
  } catch {
    return undefined;
  }
}
