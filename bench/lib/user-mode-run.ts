// One JavaScript runtime start under QEMU's user-mode emulator (qemu-x86_64: the same TCG
// translator as a VM, without the kernel), timed from spawn to a marker: a line on stderr, or the
// agent's reply written into a fake virtio-serial port. QEMU's CPU time and RSS are read at the
// marker, then the process is killed. The `-L` prefix is QEMU's path prefix: an absolute path that
// exists under it is opened there instead, which gives the agent /sys/class/virtio-ports, its
// port, /proc/cmdline and the files it writes after the first call (/proc/sys/vm/drop_caches, ...)
// without touching the host's.
import { spawn } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { processCpuSeconds } from "../../src/util/proc-sched.js";

export interface UserModeRun {
  argv: readonly string[];
  env?: Record<string, string>;
  /** "line": a stderr line matching `line`; "reply": `portFile` grew past `requestBytes`. */
  until: { kind: "line"; line: RegExp } | { kind: "reply"; portFile: string; requestBytes: number };
  timeoutMs: number;
}

export interface UserModeResult {
  wallMs: number;
  cpuMs: number;
  rssMiB: number;
}

export const QEMU_USER = "qemu-x86_64";

/** The TCG CPU model the VMs use (src/hypervisor/qemu/args/cpu.ts: max without ERMS). */
export const USER_MODE_CPU = "max,erms=off";

/**
 * The environment the guest's init gives the agent, not the host's: node 20 reads
 * NODE_EXTRA_CA_CERTS at start (OpenSSL parses every certificate in it: ~400 M instructions with
 * a system bundle), node 22 only when TLS first needs it, so a host variable would skew the comparison.
 */
export const GUEST_ENV: Record<string, string> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root" };

export async function runUnderQemuUser(prefix: string, run: UserModeRun): Promise<UserModeResult> {
  const start = performance.now();
  const child = spawn(QEMU_USER, ["-L", prefix, "-cpu", USER_MODE_CPU, ...run.argv], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...GUEST_ENV, ...run.env },
  });
  let stderr = "";
  let exited: string | undefined;
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.on("exit", (code, signal) => (exited = `exited with ${signal ?? code}`));
  child.on("error", (err) => (exited = `could not start: ${err.message}`));
  try {
    for (;;) {
      if (await reached(run.until, stderr)) break;
      if (exited !== undefined) throw new Error(`${run.argv.join(" ")} ${exited} before its marker; stderr: ${stderr.slice(-400)}`);
      if (performance.now() - start > run.timeoutMs) throw new Error(`${run.argv.join(" ")}: no marker within ${run.timeoutMs} ms; stderr: ${stderr.slice(-400)}`);
      await sleep(2);
    }
    const wallMs = performance.now() - start;
    const [cpu, rssMiB] = await Promise.all([processCpuSeconds(child.pid), residentMiB(child.pid)]);
    return { wallMs, cpuMs: (cpu ?? NaN) * 1000, rssMiB };
  } finally {
    if (exited === undefined) {
      const gone = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await gone;
    }
  }
}

async function reached(until: UserModeRun["until"], stderr: string): Promise<boolean> {
  if (until.kind === "line") return until.line.test(stderr);
  const size = await stat(until.portFile).then((s) => s.size, () => 0);
  return size > until.requestBytes;
}

async function residentMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kib = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1]);
  return kib / 1024;
}
