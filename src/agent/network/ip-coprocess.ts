// A warm `ip -json -batch -` for a pooled VM's adoption: started by PrepareSandbox (before any
// pod), so adoption's UpdateNetwork writes its lines to a running iproute2 instead of spawning one
// (a process spawn from the agent costs ~100 ms of CPU under TCG, on the pod's critical path).
//
// The protocol over the pipe. iproute2's batch mode reads a line, runs it, flushes its output, and
// on a failing line prints `Command failed -:N` (N: the line's number since the start) on stderr
// and exits non-zero (no -force: nothing after a failure runs, as in a one-shot batch); a line it
// cannot parse ("any valid prefix is expected rather than ...") makes it exit at once, naming the
// argument. A call writes its lines and then a sentinel, `addr show dev lo`, whose answer (the
// loopback link alone) tells that every line before it succeeded; the co-process carries no line
// naming lo nor any show of all links, so no answer of a caller's looks like it. The co-process gone
// before the sentinel answered with something on stderr: a line failed (the error names it and
// what iproute2 said). Gone silently, or no sentinel within the deadline (wedged: it is killed):
// UNAVAILABLE, and the caller runs the same lines in a fresh `ip` (they are built to be re-run).
import { spawn, type ChildProcess } from "node:child_process";
import { KataError } from "../../util/errors.js";

// Not `link show`: in a batch, iproute2 6.1 then prints every later `addr show` without addresses.
const SENTINEL = ["addr", "show", "dev", "lo"] as const;

interface Pending {
  firstLine: number;
  lines: readonly (readonly string[])[];
  out: unknown[];
  resolve: (v: unknown[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function isSentinelAnswer(v: unknown): boolean {
  if (!Array.isArray(v) || v.length !== 1) return false;
  const o = v[0] as Record<string, unknown> | null;
  return typeof o === "object" && o !== null && o.ifname === "lo" && o.link_type === "loopback";
}

/**
 * Lines the co-process carries: changes, `route show`, and `addr show dev X` for X other than lo,
 * so no answer but the sentinel's is the loopback link alone. Others run in a fresh `ip`.
 */
function carried(l: readonly string[]): boolean {
  if (l.includes("lo")) return false;
  if (!l.includes("show") && !l.includes("list") && !l.includes("ls") && !l.includes("lst")) return true;
  const words = l.join(" ");
  return words === "route show" || /^(addr|address) show dev \S+$/.test(words);
}

/** A line the co-process can carry: no option, no quoting, and never the loopback (the sentinel's). */
export function checkBatchLine(l: readonly string[]): void {
  if (l.length === 0 || l.some((a) => a === "" || a.startsWith("-") || /[\s"'\\#]/.test(a))) throw new KataError("INVALID_ARGUMENT", `ip arguments not allowed in a batch: ${JSON.stringify(l)}`);
}

export class IpCoprocess {
  private readonly child: ChildProcess;
  /** Lines written so far (iproute2 numbers batch lines from 1). */
  private written = 0;
  private stdoutBuf = "";
  private stderrBuf = "";
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private exited = false;
  /** Calls answered (the sentinel seen). */
  answered = 0;
  readonly ended: Promise<void>;

  /** `ip` (or `ip -n NETNS`, for tests) with `-json -batch -`; spawning errors surface on the first call. */
  constructor(ipArgs: readonly string[] = [], ipPath = "ip") {
    this.child = spawn(ipPath, [...ipArgs, "-json", "-batch", "-"], { stdio: ["pipe", "pipe", "pipe"] });
    // "close": exited and its stdout and stderr read to the end (what it said before going is in).
    this.ended = new Promise((resolve) => this.child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      this.onExit(code, signal);
      resolve();
    }));
    this.child.once("error", () => this.onExit(null, null));
    this.child.once("exit", () => (this.exited = true));
    this.child.stdin?.on("error", () => undefined);
    this.child.stdout?.setEncoding("utf8").on("data", (s: string) => this.onStdout(s));
    this.child.stderr?.setEncoding("utf8").on("data", (s: string) => (this.stderrBuf += s));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /**
   * Runs the lines (one batch, stops at the first failure); one parsed JSON answer per line that
   * prints one, in order. Calls are serialized.
   */
  run(lines: readonly (readonly string[])[], timeoutMs: number): Promise<unknown[]> {
    for (const l of lines) {
      try {
        checkBatchLine(l);
      } catch (err) {
        return Promise.reject(err as Error);
      }
      // The caller runs it in a fresh `ip` instead.
      if (!carried(l)) return Promise.reject(new KataError("UNAVAILABLE", `the warm ip co-process does not carry \`${l.join(" ")}\``));
    }
    const call = this.queue.then(() => this.runNow(lines, timeoutMs));
    this.queue = call.catch(() => undefined);
    return call;
  }

  /** Ends it (EOF on its stdin: iproute2 exits); a wedged one is killed. Does not wait. */
  close(): void {
    if (this.exited) return;
    this.child.stdin?.end();
    setTimeout(() => this.kill(), 5000).unref();
  }

  private kill(): void {
    if (!this.exited) this.child.kill("SIGKILL");
  }

  private runNow(lines: readonly (readonly string[])[], timeoutMs: number): Promise<unknown[]> {
    if (this.exited) return Promise.reject(new KataError("UNAVAILABLE", `the warm ip co-process is gone${this.stderrBuf.trim() === "" ? "" : `: ${this.stderrBuf.trim()}`}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        this.kill();
        reject(new KataError("UNAVAILABLE", `the warm ip co-process did not answer within ${timeoutMs} ms (killed)`));
      }, timeoutMs);
      this.stderrBuf = "";
      this.pending = { firstLine: this.written + 1, lines, out: [], resolve, reject, timer };
      const text = [...lines, SENTINEL].map((l) => `${l.join(" ")}\n`).join("");
      this.written += lines.length + 1;
      this.child.stdin?.write(text);
    });
  }

  private onStdout(chunk: string): void {
    this.stdoutBuf += chunk;
    for (let nl = this.stdoutBuf.indexOf("\n"); nl >= 0; nl = this.stdoutBuf.indexOf("\n")) {
      const line = this.stdoutBuf.slice(0, nl).trim();
      this.stdoutBuf = this.stdoutBuf.slice(nl + 1);
      const p = this.pending;
      if (line === "" || p === undefined) continue;
      let value: unknown;
      try {
        value = JSON.parse(line) as unknown;
      } catch {
        this.finish(p, new KataError("INTERNAL", `ip printed a line that is not JSON: ${line.slice(0, 200)}`));
        this.kill();
        continue;
      }
      if (isSentinelAnswer(value)) this.finish(p, undefined);
      else p.out.push(value);
    }
  }

  private finish(p: Pending, err: Error | undefined): void {
    clearTimeout(p.timer);
    this.pending = undefined;
    if (err === undefined) {
      this.answered++;
      p.resolve(p.out);
    }
    else p.reject(err);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.exited = true;
    const p = this.pending;
    if (p !== undefined) this.finish(p, this.failure(p, code, signal));
  }

  /** Why the co-process ended during a call: a line of the call failed, or it just went away. */
  private failure(p: Pending, code: number | null, signal: NodeJS.Signals | null): KataError {
    const stderr = this.stderrBuf.trim();
    if (stderr === "" || signal !== null) return new KataError("UNAVAILABLE", `the warm ip co-process ended (${signal ?? `exit ${code}`}) during a call${stderr === "" ? "" : `: ${stderr}`}`);
    const n = /Command failed -:(\d+)/.exec(stderr);
    const index = n === undefined || n === null ? -1 : Number(n[1]) - p.firstLine;
    const what = p.lines[index];
    const said = stderr.split("\n").filter((l) => !l.startsWith("Command failed")).join("; ");
    const where = what === undefined ? `in the batch [${p.lines.map((l) => l.join(" ")).join("; ")}]` : `at \`ip ${what.join(" ")}\``;
    return new KataError("INTERNAL", `guest network set-up failed ${where}: ${said}`);
  }
}
