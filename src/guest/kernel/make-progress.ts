// Runs the kernel's make with a visible phase and percentage. Kbuild prints one line per step
// ("  CC      kernel/fork.o"); compile steps are counted against the count of the previous build of
// the same configuration (or an estimate), so the percentage is close on a rebuild and honest
// (capped at 99 % until make exits) on the first one.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { KataError } from "../../util/errors.js";

const compileStep = /^\s+(CC|AS)\s+\S+\.o$/;

export interface MakeOptions {
  cwd: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Expected number of compile steps (CC/AS lines). */
  expectedSteps: number;
  timeoutMs: number;
  /** Called with 0..99 each time the whole percent changes, and with 100 at the end. */
  onPercent(percent: number, steps: number): void;
}

/** The percent to show for `steps` of `expected`, never 100 before make is done. */
export function progressPercent(steps: number, expected: number): number {
  if (expected <= 0) return 0;
  return Math.min(99, Math.floor((steps * 100) / expected));
}

/** Runs make; resolves with the number of compile steps, rejects with make's last output lines. */
export function runMakeWithProgress(opts: MakeOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("make", [...opts.args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let steps = 0;
    let shown = -1;
    const tail: string[] = [];
    const remember = (line: string): void => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
    };
    createInterface({ input: child.stdout }).on("line", (line) => {
      remember(line);
      if (!compileStep.test(line)) return;
      steps += 1;
      const p = progressPercent(steps, opts.expectedSteps);
      if (p !== shown) {
        shown = p;
        opts.onPercent(p, steps);
      }
    });
    createInterface({ input: child.stderr }).on("line", remember);
    const timer = setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new KataError("NOT_FOUND", `cannot run make (install build-essential: kata-ts setup does): ${err.message}`, { cause: err }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        opts.onPercent(100, steps);
        resolve(steps);
        return;
      }
      const why = signal !== null ? `was killed (${signal}${signal === "SIGTERM" ? `, after ${Math.round(opts.timeoutMs / 60_000)} min` : ""})` : `exited with status ${code}`;
      reject(new KataError("INTERNAL", `make ${opts.args.join(" ")} ${why}; last output:\n${tail.join("\n")}`));
    });
  });
}
