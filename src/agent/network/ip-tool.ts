// `ip` (iproute2, in the guest image) with JSON output. Node has no netlink; iproute2 is the
// guest's one network tool, run without a shell like every other tool.
import { run } from "../../util/exec.js";
import { KataError } from "../../util/errors.js";

const IP_MS = 15_000;

export async function ip(args: readonly string[]): Promise<string> {
  return (await run("ip", args, { timeoutMs: IP_MS })).stdout;
}

/** `ip -j ...` parsed; iproute2 prints nothing (not "[]") for some empty answers. */
export async function ipJson<T>(args: readonly string[]): Promise<T[]> {
  const out = (await ip(["-j", ...args])).trim();
  return out === "" ? [] : (JSON.parse(out) as T[]);
}

/**
 * Several `ip` commands in one process (`ip [-4|-6] -json -batch -`): iproute2 stops at the first
 * that fails (and exits non-zero, so this throws). A batch line takes no option: the family, if
 * any, is the whole batch's. One parsed JSON answer per show command, in order.
 */
export async function ipBatch(family: 4 | 6 | undefined, lines: readonly (readonly string[])[]): Promise<unknown[]> {
  for (const l of lines) {
    if (l.some((a) => a === "" || a.startsWith("-") || /[\s"'\\#]/.test(a))) throw new KataError("INVALID_ARGUMENT", `ip arguments not allowed in a batch: ${JSON.stringify(l)}`);
  }
  const args = [...(family === undefined ? [] : [`-${family}`]), "-json", "-batch", "-"];
  const out = (await run("ip", args, { timeoutMs: IP_MS, input: `${lines.map((l) => l.join(" ")).join("\n")}\n` })).stdout;
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as unknown);
}
