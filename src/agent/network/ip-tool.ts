// `ip` (iproute2, in the guest image) with JSON output. Node has no netlink; iproute2 is the
// guest's one network tool, run without a shell like every other tool.
import { run } from "../../util/exec.js";
import { isKataError } from "../../util/errors.js";
import { checkBatchLine, IpCoprocess } from "./ip-coprocess.js";

const IP_MS = 15_000;
/** A warm co-process that has not answered by then is wedged: killed, and a fresh `ip` runs the lines. */
const WARM_IP_MS = 8_000;

export async function ip(args: readonly string[]): Promise<string> {
  return (await run("ip", args, { timeoutMs: IP_MS })).stdout;
}

/** `ip -j ...` parsed; iproute2 prints nothing (not "[]") for some empty answers. */
export async function ipJson<T>(args: readonly string[]): Promise<T[]> {
  const out = (await ip(["-j", ...args])).trim();
  return out === "" ? [] : (JSON.parse(out) as T[]);
}

let warm: IpCoprocess | undefined;

/**
 * Start the warm `ip -json -batch -` (PrepareSandbox, pooled VMs only) and run `lines` through it
 * (read-only ones: the warm-up). The next family-less batch (adoption's UpdateNetwork) is written
 * to it, and then it is ended: it serves adoption only (docs/network.md "Warm ip").
 */
export async function startWarmIp(lines: readonly (readonly string[])[], ipArgs: readonly string[] = []): Promise<IpCoprocess> {
  return (await startWarmIpAnswering(lines, ipArgs)).co;
}

/** startWarmIp, with the answers of `lines` (the pod path's rehearsal reads its undo back: rehearsal.ts). */
export async function startWarmIpAnswering(lines: readonly (readonly string[])[], ipArgs: readonly string[] = []): Promise<{ co: IpCoprocess; answers: unknown[] }> {
  warm?.close();
  const co = new IpCoprocess(ipArgs);
  warm = co;
  const answers = await co.run(lines, IP_MS);
  return { co, answers };
}

/** The warm co-process, if one is running and not used yet: taken (only one call gets it). */
function takeWarmIp(): IpCoprocess | undefined {
  const co = warm;
  warm = undefined;
  return co?.alive === true ? co : undefined;
}

/**
 * Several `ip` commands in one process (`ip [-4|-6] -json -batch -`): iproute2 stops at the first
 * that fails (and exits non-zero, so this throws). A batch line takes no option: the family, if
 * any, is the whole batch's. One parsed JSON answer per show command, in order. A family-less
 * batch goes to the warm co-process when there is one (then ended); should it be gone or wedged,
 * the same lines run in a fresh `ip` (they are written to be re-run).
 */
export async function ipBatch(family: 4 | 6 | undefined, lines: readonly (readonly string[])[], ipArgs: readonly string[] = []): Promise<unknown[]> {
  for (const l of lines) checkBatchLine(l);
  const co = family === undefined ? takeWarmIp() : undefined;
  if (co !== undefined) {
    try {
      return await co.run(lines, WARM_IP_MS);
    } catch (err) {
      if (!isKataError(err, "UNAVAILABLE")) throw err;
    } finally {
      co.close();
    }
  }
  const args = [...ipArgs, ...(family === undefined ? [] : [`-${family}`]), "-json", "-batch", "-"];
  const out = (await run("ip", args, { timeoutMs: IP_MS, input: `${lines.map((l) => l.join(" ")).join("\n")}\n` })).stdout;
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as unknown);
}
