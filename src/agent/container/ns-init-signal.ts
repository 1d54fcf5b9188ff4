// Signals to a PID namespace's init. The kernel delivers a signal to the init of a PID namespace
// (from an ancestor namespace too) only if the init has a handler for it; SIGKILL and SIGSTOP
// excepted. A container's app is that init when it has its own PID namespace, and it installs its
// SIGTERM handler some time after exec. Under runc that window is a few milliseconds; in a TCG
// guest it is hundreds, so a StopContainer right after StartContainer would see its SIGTERM
// dropped and wait out the whole grace period. kata-ts therefore holds such a signal and delivers
// it as soon as the process has a handler for it. A process that never handles the signal (like
// `sleep`) never gets it, exactly as under runc: the grace period ends with SIGKILL.
import { readFile, readlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

const SIGKILL = 9;
const SIGSTOP = 19;

export interface SignalDisposition {
  /** The process is PID 1 of its innermost PID namespace. */
  nsInit: boolean;
  /**
   * Still crun (the pid file names the container process before it execs the app): a handler it
   * has is crun's, and a signal it takes now stays pending across the exec, where the kernel then
   * drops it for a namespace init without a handler.
   */
  preExec: boolean;
  caught: boolean;
  ignored: boolean;
}

/** How `pid` would take `sig`, from /proc/<pid>/status; undefined once the process is gone. */
export async function signalDisposition(pid: number, sig: number): Promise<SignalDisposition | undefined> {
  const text = await readFile(`/proc/${pid}/status`, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text)?.[1]?.trim() ?? "";
  const nspids = field("NSpid").split(/\s+/);
  const bit = 1n << BigInt(sig - 1);
  const mask = (name: string): bigint => {
    const hex = field(name);
    return /^[0-9a-f]+$/i.test(hex) ? BigInt(`0x${hex}`) : 0n;
  };
  const exe = await readlink(`/proc/${pid}/exe`).catch(() => "");
  return {
    nsInit: nspids.length > 1 && nspids[nspids.length - 1] === "1",
    preExec: /(^\/.*\/crun|memfd:crun.*)( \(deleted\))?$/.test(exe),
    caught: (mask("SigCgt") & bit) !== 0n,
    ignored: (mask("SigIgn") & bit) !== 0n,
  };
}

/** True when the kernel would drop `sig` sent to `pid` now, but would take it once a handler exists. */
export async function wouldDropUntilHandled(pid: number, sig: number): Promise<boolean> {
  if (sig === SIGKILL || sig === SIGSTOP || sig === 0) return false;
  const d = await signalDisposition(pid, sig);
  return d !== undefined && d.nsInit && (d.preExec || (!d.caught && !d.ignored));
}

/**
 * Polls until `pid` catches `sig`, then sends it; stops when `gone()` says the process exited.
 * Quick polls first (a handler usually appears within a second), slower ones after.
 */
export async function deliverWhenHandled(pid: number, sig: number, gone: () => boolean): Promise<void> {
  const started = Date.now();
  while (!gone()) {
    const d = await signalDisposition(pid, sig);
    if (d === undefined) return;
    if (!d.preExec && d.ignored) return;
    if (!d.preExec && d.caught) {
      try {
        process.kill(pid, sig);
      } catch {
        // exited between the read and the kill
      }
      return;
    }
    const age = Date.now() - started;
    await sleep(age < 2_000 ? 20 : 100); // the guest may have one vCPU: leave it to the app
  }
}
