// One QEMU microvm: what is QEMU's (its argv, the QMP control socket, `quit`, the exit read from QMP
// events, handing a running VM to another process). The lifecycle, the process, the capped console
// and the teardown order are every driver's (../vmm-vm.ts).
import { createLogger } from "../../util/log.js";
import { VmmVm, type VmmCommand, type VmmVmOptions } from "../vmm-vm.js";
import type { ResolvedAccel, VmConfig, VmExit } from "../types.js";
import type { ProcessExit } from "../vmm-process.js";
import { qemuArgs, type QemuTuning } from "./cmdline.js";
import { qemuEnv } from "./env.js";
import { privateKernelCopy, releaseKernelCopy, type KernelCopy } from "./kernel-copy.js";
import { qemuVmFiles, type VmLayout } from "./layout.js";
import { QmpClient, type QmpEvent } from "./qmp.js";
import { guestResetReason } from "../console-tail.js";
import { flushTcgCache } from "./tcg-flush.js";
import { trimTcgCache, trimSocketName } from "./tcg-trim.js";
import type { TcgCacheTrimmable, TcgTrimResult } from "../types.js";
import { KataError } from "../../util/errors.js";
import { join } from "node:path";

export interface QemuVmOptions extends VmmVmOptions {
  binary: string;
  /** Settles `auto` and the rest of the tuning just before spawning. */
  tuning: (config: VmConfig) => Promise<QemuTuning>;
  /**
   * Boot an ELF kernel from a private copy that is emptied once QEMU has loaded it (kernel-copy.ts):
   * QEMU then holds none of the kernel file. Default true; false only to measure what it saves.
   */
  releaseKernel?: boolean;
}

const log = createLogger("hypervisor.qemu");

export class QemuVm extends VmmVm implements TcgCacheTrimmable {
  accel: ResolvedAccel | undefined;
  /** The exact argv QEMU was started with (for docs and diagnostics). */
  args: string[] = [];
  protected readonly vmmName = "QEMU";
  private qmp: QmpClient | undefined;
  /** QEMU's private copy of the kernel until it is released after start. */
  private kernelCopy: KernelCopy | undefined;

  constructor(
    config: VmConfig,
    private readonly layout: VmLayout,
    private readonly qemu: QemuVmOptions,
  ) {
    super(config, qemuVmFiles(layout), qemu);
  }

  get qmpSocketPath(): string {
    return this.layout.qmpSocketPath;
  }

  protected async command(): Promise<VmmCommand> {
    const tuning = await this.qemu.tuning(this.config);
    this.accel = tuning.accel;
    if (this.qemu.releaseKernel !== false) {
      this.kernelCopy = await privateKernelCopy(this.config.kernelPath, this.layout.stateDir).catch((err: unknown) => {
        log.warn({ vm: this.id, err }, "could not copy the guest kernel into the VM's state dir; QEMU maps the shared file and keeps it resident");
        return undefined;
      });
    }
    const config = this.kernelCopy === undefined ? this.config : { ...this.config, kernelPath: this.kernelCopy.path };
    this.args = qemuArgs(config, this.layout, tuning);
    // QEMU's serial chardev connects to the console socket at start-up (server=off): no early line is lost.
    return { binary: this.qemu.binary, args: this.args, env: qemuEnv(), console: { socketPath: this.layout.consoleSocketPath } };
  }

  /**
   * QEMU creates the QMP socket early; poll for it while watching for an early exit. Once QMP has
   * answered `qmp_capabilities` (dispatched by QEMU's main loop, which runs only after the machine
   * was created and reset, the reset having copied the kernel into guest RAM), the kernel copy is released.
   */
  protected async control(deadline: number): Promise<void> {
    this.qmp = await this.untilReady("open its QMP socket", deadline, (timeoutMs) => QmpClient.connect(this.layout.qmpSocketPath, { timeoutMs }));
    const copy = this.kernelCopy;
    this.kernelCopy = undefined;
    if (copy !== undefined) {
      await releaseKernelCopy(copy).catch((err: unknown) => log.warn({ vm: this.id, err }, "could not empty QEMU's copy of the guest kernel; it stays resident for the VM's life"));
    }
  }

  /**
   * QMP `quit` makes QEMU exit cleanly (the guest is not asked: ACPI power-down is ignored by a guest
   * without an ACPI daemon, measured in docs/hypervisor.md; orderly guest shutdown is the agent's
   * job, before stop).
   */
  protected async askToQuit(timeoutMs: number): Promise<boolean> {
    await this.qmp?.execute("quit", undefined, { timeoutMs }).catch(() => undefined);
    return true;
  }

  protected classify(pexit: ProcessExit, consoleTail: string | undefined): Pick<VmExit, "reason" | "vmmReason"> {
    const events = this.qmp?.events ?? [];
    const shutdown = events.find((e) => e.event === "SHUTDOWN")?.data?.reason;
    return {
      reason: classifyExit(pexit, events, this.stopRequested, consoleTail),
      ...(typeof shutdown === "string" ? { vmmReason: shutdown } : {}),
    };
  }

  protected override closeControl(): void {
    this.qmp?.close();
  }

  /**
   * Hand the running VM to another process (the VM pool gives it to a pod's shim, which reaches it by
   * its sockets and pid): QMP is closed, QEMU is no longer killed when this process exits, and the
   * state dir stays. The VM keeps running; this object only notes its end.
   */
  detach(): void {
    if (this.lifecycle.state !== "running" || this.proc === undefined) throw this.lifecycle.refusal("detach");
    this.ownsStateDir = false;
    this.detached = true;
    this.proc.forget();
    this.qmp?.close();
    this.qmp = undefined;
  }

  /**
   * Empty TCG's translation cache now (tcg-flush.ts: a one-step gdbstub on `socketPath`, which must
   * be in a directory only root can enter; closed again within `timeoutMs`, the VM never left paused).
   */
  async flushTcgCache(socketPath: string, timeoutMs: number): Promise<void> {
    const qmp = this.qmp;
    if (qmp === undefined || this.lifecycle.state !== "running") throw this.lifecycle.refusal("flush its TCG cache");
    if (this.accel !== "tcg") throw new KataError("FAILED_PRECONDITION", `QEMU runs this VM with ${this.accel ?? "no known accelerator"}, not TCG: there is no translation cache to flush`);
    await flushTcgCache((line, ms) => qmp.execute("human-monitor-command", { "command-line": line }, { timeoutMs: ms }), socketPath, { timeoutMs });
  }

  /**
   * Empty TCG's translation cache and give its pages back to the host (tcg-trim.ts: QEMU started
   * with split-wx; a one-step gdbstub in the VM's state dir, 0700, closed again within `timeoutMs`).
   */
  async trimTcgCache(timeoutMs: number, signal?: AbortSignal): Promise<TcgTrimResult> {
    const qmp = this.qmp;
    const pid = this.pid;
    if (qmp === undefined || pid === undefined || this.lifecycle.state !== "running") throw this.lifecycle.refusal("trim its TCG cache");
    if (this.accel !== "tcg") throw new KataError("FAILED_PRECONDITION", `QEMU runs this VM with ${this.accel ?? "no known accelerator"}, not TCG: there is no translation cache to trim`);
    return trimTcgCache(pid, (line, ms) => qmp.execute("human-monitor-command", { "command-line": line }, { timeoutMs: ms }), join(this.stateDir, trimSocketName), { timeoutMs, ...(signal === undefined ? {} : { signal }) });
  }

  /** Each vCPU's instruction pointer and halt state (HMP `info registers`), for stuck-boot reports. */
  async describeVcpus(): Promise<string> {
    if (this.qmp === undefined) return "";
    const text = await this.qmp.execute("human-monitor-command", { "command-line": "info registers -a" }, { timeoutMs: 2000 });
    const cpus = [...text.matchAll(/RIP=([0-9a-f]+)\b.*?\bHLT=(\d)/g)].map(
      (m, i) => `vCPU ${i} at RIP ${m[1] ?? "?"}${m[2] === "1" ? " (halted)" : ""}`,
    );
    return cpus.length > 0 ? cpus.join(", ") : "";
  }
}

/** How a QEMU VM ended: QMP events first (the guest's doing), then whether we asked. */
export function classifyExit(
  pexit: ProcessExit,
  events: readonly Pick<QmpEvent, "event" | "data">[],
  requested: "quit" | "kill" | undefined,
  consoleTail?: string,
): VmExit["reason"] {
  if (events.some((e) => e.event === "GUEST_PANICKED")) return "guest-panic";
  const shutdown = events.find((e) => e.event === "SHUTDOWN")?.data?.reason;
  // -no-reboot turns a guest reset into an exit with this reason: a panic (panic=-1) or the end of
  // a guest without ACPI (console-tail.ts).
  if (shutdown === "guest-reset") return guestResetReason(consoleTail);
  if (shutdown === "guest-shutdown") return "poweroff";
  if (requested === "kill" && pexit.signal !== null) return "killed";
  if (requested !== undefined) return pexit.code === 0 || pexit.signal === "SIGTERM" ? "stopped" : "killed";
  return "crashed";
}
