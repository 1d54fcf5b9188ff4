// Running iproute2 inside the pod's network namespace. Node cannot setns(2) itself, so every tool
// runs under `nsenter --net=PATH` (which joins the netns and then execs the tool: no shell, and
// nothing else of ours changes namespace).
import { run, type ExecResult } from "../../util/exec.js";

const NETNS_MS = 15_000;

export function nsenterArgs(netnsPath: string, file: string, args: readonly string[]): string[] {
  return [`--net=${netnsPath}`, "--", file, ...args];
}

export function inNetns(netnsPath: string, file: string, args: readonly string[]): Promise<ExecResult> {
  return run("nsenter", nsenterArgs(netnsPath, file, args), { timeoutMs: NETNS_MS });
}

/** `ip -j ...` in the netns, parsed (iproute2 prints nothing rather than "[]" for some empty answers). */
export async function ipJsonIn<T>(netnsPath: string, args: readonly string[]): Promise<T[]> {
  const out = (await inNetns(netnsPath, "ip", ["-j", ...args])).stdout.trim();
  return out === "" ? [] : (JSON.parse(out) as T[]);
}
