// A crun that neither writes its pid file nor exits: how long to wait for it, and the error that
// ends the wait. The error must reach the host before the host's own deadline for the call (the
// shim's StartContainer/ExecProcess deadline, sent as the ttRPC timeout), or the host only learns
// "deadline exceeded"; so the agent gives up a margin before that deadline. It kills crun and what
// crun started, and says what they were doing, what crun logged and what the guest kernel reported
// (the one cause seen so far: an oops in the guest's virtio-fs, see docs/containers.md).
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { KataError } from "../../util/errors.js";
import { describeKernelComplaints, readKernelComplaints } from "./kernel-complaints.js";
import { describeTree, killTree, processTree } from "./process-tree.js";

/** Without a caller's deadline. */
export const DEFAULT_START_TIMEOUT_MS = 120_000;
const MAX_LOG_BYTES = 4096;

/**
 * The wait for crun's pid file: `ownMs` (default 120 s), shortened so that it ends a margin (10 % of
 * the time left, 3 to 15 s: killing crun, reading /proc and answering under a loaded TCG guest)
 * before the caller's `deadline`.
 */
export function startTimeoutMs(ownMs: number | undefined, deadline: number | undefined, now = Date.now()): number {
  const own = ownMs ?? DEFAULT_START_TIMEOUT_MS;
  if (deadline === undefined) return own;
  const left = deadline - now;
  const margin = Math.min(15_000, Math.max(3_000, left * 0.1));
  return Math.max(0, Math.min(own, left - margin));
}

/** The tail of crun's --log file; never blocks (a FIFO or device there is not read). */
export async function readLogTail(file: string): Promise<string> {
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) return "";
      const len = Math.min(st.size, MAX_LOG_BYTES);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, st.size - len);
      return buf.toString("utf8").trim();
    } finally {
      await fh.close();
    }
  } catch {
    return "";
  }
}

export interface StuckStart {
  /** "container <id>" or "process <exec id> of <id>". */
  what: string;
  crunPid: number | undefined;
  timeoutMs: number;
  logFile: string;
  /** /dev/kmsg in the guest; undefined: do not read a kernel log. */
  kernelLog: string | undefined;
}

/**
 * `work` (opening the container's paths on the share before crun runs) within `timeoutMs`, else a
 * DEADLINE_EXCEEDED error: a virtio-fs that no longer answers blocks such a call for ever.
 */
export async function withinStartTime<T>(work: Promise<T>, timeoutMs: number, what: string, kernelLog: string | undefined): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const kernel = kernelLog === undefined ? "" : describeKernelComplaints(readKernelComplaints(kernelLog));
      const why = `the container's files on the shared filesystem did not answer within ${(timeoutMs / 1000).toFixed(0)} s while starting ${what}`;
      reject(new KataError("DEADLINE_EXCEEDED", kernel === "" ? why : `${why}; guest kernel reported: ${kernel}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Kills crun's process tree and builds the DEADLINE_EXCEEDED error that says why it was stuck. */
export async function stuckStartError(s: StuckStart): Promise<KataError> {
  const tree = s.crunPid === undefined ? [] : await processTree(s.crunPid);
  const left = await killTree(tree, 3_000);
  const log = await readLogTail(s.logFile);
  const kernel = s.kernelLog === undefined ? "" : describeKernelComplaints(readKernelComplaints(s.kernelLog));
  const parts = [
    `crun did not start ${s.what} within ${(s.timeoutMs / 1000).toFixed(0)} s: it neither wrote its pid file nor exited`,
    `its processes were: ${describeTree(tree)}`,
    left.length === 0
      ? "all killed"
      : `still there after SIGKILL, blocked in the kernel: ${describeTree(left)} (the guest cannot run containers any more: recreate the pod)`,
    `crun log: ${log === "" ? "empty" : log}`,
  ];
  if (kernel !== "") parts.push(`guest kernel reported: ${kernel}`);
  return new KataError("DEADLINE_EXCEEDED", parts.join("; "));
}
