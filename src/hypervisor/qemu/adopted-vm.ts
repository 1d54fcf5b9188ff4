// A QEMU this process did not start: a pooled VM handed over by the pool daemon, or a running
// pod's VM taken over by a new shim process (src/sandbox/reattach.ts). It is reached by
// its QMP socket and pid (it is not our child, so it cannot be reaped here: its end is seen as the
// QMP connection closing and the pid going away). stop() asks QEMU to quit over QMP, then kills it.
import { readFile, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { QmpClient } from "./qmp.js";
import { qemuVmFiles, vmLayout, type VmLayout } from "./layout.js";
import type { ResolvedAccel, StopOptions, TcgCacheTrimmable, TcgTrimResult, Vm, VmExit, VmState } from "../types.js";
import { trimSocketName, trimTcgCache } from "./tcg-trim.js";
import { releaseGdbstub } from "./gdbstub.js";
import { KataError } from "../../util/errors.js";
import { join } from "node:path";
import { guestResetReason, readTail } from "../console-tail.js";
import { VmFilesView } from "../vm-files.js";

/** Gone, a zombie, or the pid now runs something else. */
export async function pidGone(pid: number, comm: RegExp): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (stat === undefined) return true;
  const m = /^\d+ \((.*)\) (\S)/.exec(stat);
  return m === null || m[2] === "Z" || !comm.test(m[1] ?? "");
}

/**
 * SIGKILL pid (with `group`: its process group, which it leads) if it still runs `comm` (a reused
 * pid is left alone); wait up to 2 s for it to go.
 */
export async function killPid(pid: number, comm: RegExp, group = false): Promise<void> {
  if (pid <= 0 || (await pidGone(pid, comm))) return;
  try {
    process.kill(group ? -pid : pid, "SIGKILL");
  } catch {
    return;
  }
  for (let i = 0; i < 100 && !(await pidGone(pid, comm)); i++) await sleep(20);
}

const QEMU_COMM = /^qemu/;

/** How often an adopted helper (not our child: no exit event) is looked for in /proc. */
const helperPollMs = 500;

/**
 * An adopted helper process (the pooled VM's virtiofsd), watched like one this process started:
 * `exited` resolves when it is gone; stop() kills its group and marks the end as requested.
 */
export class AdoptedHelper {
  private requested = false;
  private watching = true;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; requested: boolean }>;

  constructor(
    readonly pid: number,
    private readonly comm: RegExp,
  ) {
    this.exited = (async () => {
      while (this.watching && !(await pidGone(pid, comm))) await sleep(helperPollMs);
      // Not our child: its exit status is its parent's to read.
      return { code: null, signal: null, requested: this.requested || !this.watching };
    })();
  }

  async stop(): Promise<void> {
    this.requested = true;
    await killPid(this.pid, this.comm, true);
    this.watching = false;
    await this.exited;
  }
}

export class AdoptedVm extends VmFilesView implements Vm, TcgCacheTrimmable {
  private stateValue: VmState = "running";
  private stopRequested = false;
  /** Let go (detach()): QEMU runs on, and its end is no longer this object's to see. */
  private detached = false;
  private readonly ended: Promise<VmExit>;

  private constructor(
    readonly id: string,
    private readonly qemuPid: number,
    private readonly layout: VmLayout,
    private readonly qmp: QmpClient,
    readonly accel: ResolvedAccel,
  ) {
    super(qemuVmFiles(layout));
    this.ended = this.watch();
  }

  static async attach(o: { id: string; pid: number; stateDir: string; accel: ResolvedAccel; timeoutMs?: number }): Promise<AdoptedVm> {
    const layout = vmLayout(o.stateDir);
    const qmp = await QmpClient.connect(layout.qmpSocketPath, { timeoutMs: o.timeoutMs ?? 5000 });
    return new AdoptedVm(o.id, o.pid, layout, qmp, o.accel);
  }

  get state(): VmState {
    return this.stateValue;
  }
  get pid(): number | undefined {
    return this.stateValue === "stopped" ? undefined : this.qemuPid;
  }

  start(): Promise<void> {
    return Promise.resolve(); // it runs already
  }

  wait(): Promise<VmExit> {
    return this.ended;
  }

  async stop(opts: StopOptions = {}): Promise<VmExit> {
    if (this.stateValue === "running") {
      this.stateValue = "stopping";
      this.stopRequested = true;
      const timeoutMs = opts.timeoutMs ?? 5000;
      await this.qmp.execute("quit", undefined, { timeoutMs: Math.min(2000, timeoutMs) }).catch(() => undefined);
      const quit = await Promise.race([this.ended.then(() => true), sleep(Math.max(timeoutMs - 500, 0)).then(() => false)]);
      if (!quit) await killPid(this.qemuPid, QEMU_COMM);
    }
    return this.ended;
  }

  /** Empty TCG's translation cache and give its pages back (tcg-trim.ts), as QemuVm does. */
  async trimTcgCache(timeoutMs: number, signal?: AbortSignal): Promise<TcgTrimResult> {
    if (this.stateValue !== "running") throw new KataError("FAILED_PRECONDITION", `VM ${this.id} is ${this.stateValue}: cannot trim its TCG cache`);
    if (this.accel !== "tcg") throw new KataError("FAILED_PRECONDITION", `QEMU runs VM ${this.id} with ${this.accel}, not TCG: there is no translation cache to trim`);
    const qmp = this.qmp;
    return trimTcgCache(this.qemuPid, (line, ms) => qmp.execute("human-monitor-command", { "command-line": line }, { timeoutMs: ms }), join(this.layout.stateDir, trimSocketName), { timeoutMs, ...(signal === undefined ? {} : { signal }) });
  }

  /**
   * A VM taken over from a process that died (src/sandbox/reattach.ts): one that died mid-trim left
   * the VM paused by its gdbstub session; the stub is closed and the VM resumed.
   */
  async releaseStaleTrim(): Promise<void> {
    const qmp = this.qmp;
    await releaseGdbstub((line, ms) => qmp.execute("human-monitor-command", { "command-line": line }, { timeoutMs: ms }), join(this.layout.stateDir, trimSocketName), true);
  }

  /** Drops the QMP connection without stopping QEMU (a take-over that failed half-way). */
  detach(): void {
    this.detached = true;
    this.qmp.close();
  }

  private async watch(): Promise<VmExit> {
    await this.qmp.closed;
    // Let go, not ended: its files stay, and wait() never resolves.
    if (this.detached) return new Promise<VmExit>(() => undefined);
    // QMP closes as QEMU exits; its parent (the pool daemon, or init) reaps it a moment later.
    for (let i = 0; i < 250 && !(await pidGone(this.qemuPid, QEMU_COMM)); i++) await sleep(20);
    const events = this.qmp.events;
    const shutdown = events.find((e) => e.event === "SHUTDOWN")?.data?.reason;
    const consoleTail = await readTail(this.layout.consoleLogPath, 4096);
    const reason: VmExit["reason"] =
      events.some((e) => e.event === "GUEST_PANICKED") ? "guest-panic"
        : shutdown === "guest-reset" ? guestResetReason(consoleTail)
          : shutdown === "guest-shutdown" ? "poweroff"
            : this.stopRequested ? "stopped" : "crashed";
    const exit: VmExit = { reason, exitCode: null, signal: null, consoleTail };
    if (typeof shutdown === "string") exit.vmmReason = shutdown;
    await rm(this.layout.stateDir, { recursive: true, force: true });
    this.stateValue = "stopped";
    return exit;
  }
}
