// `ip` (iproute2, in the guest image) with JSON output. Node has no netlink; iproute2 is the
// guest's one network tool, run without a shell like every other tool.
import { run } from "../../util/exec.js";

const IP_MS = 15_000;

export async function ip(args: readonly string[]): Promise<string> {
  return (await run("ip", args, { timeoutMs: IP_MS })).stdout;
}

/** `ip -j ...` parsed; iproute2 prints nothing (not "[]") for some empty answers. */
export async function ipJson<T>(args: readonly string[]): Promise<T[]> {
  const out = (await ip(["-j", ...args])).trim();
  return out === "" ? [] : (JSON.parse(out) as T[]);
}
