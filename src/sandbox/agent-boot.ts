// Boot a VM and wait until its agent answers Health.Check, within one deadline. On any failure the
// VM is stopped (killed, reaped, state dir removed) and the error says what the console showed.
// This is the sandbox's side of the agent: the hypervisor layer only starts VMs and says where
// their agent channel is (vm.agentEndpoint).
//
// With QEMU the channel is the chardev socket of a virtio-serial port: the host connects as soon
// as QEMU is up, and QEMU holds requests until the guest opens the port. With hybrid vsock (Cloud
// Hypervisor, Firecracker) the VMM refuses CONNECT until the guest listens, so the dial itself
// retries. Check is then re-sent with growing per-attempt timeouts: should a request be lost (an
// agent that opened the port and restarted), the next one gets through, and the duplicate answers
// to timed-out calls are ignored.
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, TtrpcClient, type TypedClient } from "../protocol/ttrpc/index.js";
import { CheckResponse_ServingStatus, Health } from "../protocol/gen/katats/agent/v1/health_pb.js";
import { describeError, isKataError, KataError } from "../util/errors.js";
import { resolveAccel } from "../hypervisor/accel.js";
import { dialAgent, describeEndpoint } from "../hypervisor/agent-channel/dial.js";
import { BootStalledError, watchBootProgress } from "../hypervisor/boot-progress.js";
import { defaultHypervisor } from "../hypervisor/select.js";
import type { Hypervisor, Vm, VmConfig, VmExit } from "../hypervisor/types.js";

export interface BootOptions {
  /** Wall time from start to an answered Check; past it the VM is killed. */
  deadlineMs: number;
  /** Defaults to the VMM the built-in configuration picks (QEMU microvm; boot probe for accel=auto). */
  hypervisor?: Hypervisor;
  /** Abandon the boot (CANCELLED); the VM is stopped like on any other failure. */
  signal?: AbortSignal;
  /** Called once the VMM runs, before the agent answers (e.g. to record its pid for crash cleanup). */
  onStarted?: (vm: Vm) => void | Promise<void>;
  /**
   * Give up early (BootStalledError) when the guest console stays silent this long before the agent
   * answers: the guest is stuck, and waiting out the deadline would not help. Default: off.
   */
  stallMs?: number;
}

export interface BootTimings {
  /** VMM spawned and its control socket answering. */
  vmmStartMs: number;
  /** From start() to the first answered Health.Check. */
  agentReadyMs: number;
  checkAttempts: number;
}

export interface BootedVm {
  vm: Vm;
  /** The ttRPC connection to the agent (callers make their own typed clients on it). */
  agent: TtrpcClient;
  health: TypedClient<typeof Health.method>;
  timings: BootTimings;
}

const consoleTailBytes = 2048;

export async function bootVm(config: VmConfig, opts: BootOptions): Promise<BootedVm> {
  const hypervisor = opts.hypervisor ?? (await defaultHypervisor());
  // accel=auto: decided by booting this very guest under KVM, once per host (cached). A VMM without
  // TCG has nothing to decide: KVM or nothing (its create() says so).
  const canTcg = hypervisor.capabilities().accels.includes("tcg");
  const accel = config.accel !== "auto" ? config.accel : canTcg ? await resolveAccel("auto", () => probeKvmBoot(config, hypervisor)) : "kvm";
  const vm = await hypervisor.create({ ...config, accel }); // validates files: nothing spawned yet on failure
  const t0 = performance.now();
  const deadline = Date.now() + opts.deadlineMs;
  let agent: TtrpcClient | undefined;
  try {
    // start() is bounded on its own (QEMU must open QMP within seconds or it is killed).
    await vm.start();
    const vmmStartMs = performance.now() - t0;
    await opts.onStarted?.(vm);
    agent = await connectAgent(vm, deadline, opts.signal);
    const health = createClient(agent, Health);
    const progress = opts.stallMs === undefined ? undefined : watchBootProgress(vm, opts.stallMs);
    const checking = waitForCheck(health, vm, deadline, opts.deadlineMs, opts.signal);
    // When the stall wins the race, the check loop ends with the VM stopped below; nobody awaits it.
    checking.catch(() => undefined);
    const attempts = await (progress === undefined ? checking : Promise.race([checking, progress.stalled]).finally(() => progress.stop()));
    return { vm, agent, health, timings: { vmmStartMs, agentReadyMs: performance.now() - t0, checkAttempts: attempts } };
  } catch (err) {
    agent?.close();
    // stop() resolves after the VM kept its console tail and removed its state dir.
    const exit = await vm.stop({ timeoutMs: 2000 }).catch(() => undefined);
    const tail = exit?.consoleTail?.trim() ? exit.consoleTail.slice(-consoleTailBytes) : "(empty)";
    if (err instanceof BootStalledError) throw new BootStalledError(`${err.message}; console log tail:\n${tail}`);
    if (err instanceof KataError && err.code === "DEADLINE_EXCEEDED") {
      throw new KataError(
        "DEADLINE_EXCEEDED",
        `agent of VM ${config.id} did not answer within ${(opts.deadlineMs / 1000).toFixed(1)}s; console log tail:\n${tail}`,
        { cause: err },
      );
    }
    throw new KataError(
      err instanceof KataError ? err.code : "INTERNAL",
      `VM ${config.id} failed to boot: ${describeError(err)}; console log tail:\n${tail}`,
      { cause: err },
    );
  }
}

/** How long a refused dial waits for the VMM's exit to be seen. */
const exitGraceMs = 2000;

/** Dial the VM's agent channel; gives up early (UNAVAILABLE) when the VM ends meanwhile. */
async function connectAgent(vm: Vm, deadline: number, signal?: AbortSignal): Promise<TtrpcClient> {
  const stop = new AbortController();
  let ended: VmExit | undefined;
  void vm.wait().then((exit) => {
    ended = exit;
    stop.abort();
  });
  const onCaller = (): void => stop.abort();
  signal?.addEventListener("abort", onCaller, { once: true });
  // Aborted while the VMM started: no event comes any more.
  if (signal?.aborted === true) stop.abort();
  try {
    const stream = await dialAgent(vm.agentEndpoint, { timeoutMs: Math.max(deadline - Date.now(), 1), signal: stop.signal });
    const client = new TtrpcClient(stream);
    stream.resume();
    return client;
  } catch (err) {
    // A refused connection usually means the VMM that listened there has just died: give its exit a
    // moment to be reaped, so the error says what happened to the VM rather than to the socket.
    if (ended === undefined && isKataError(err, "UNAVAILABLE")) await Promise.race([vm.wait(), sleep(exitGraceMs, undefined, { ref: false })]);
    if (ended !== undefined) {
      throw new KataError("UNAVAILABLE", `the VM ended before its agent answered (${ended.reason}, VMM exit ${ended.exitCode ?? ended.signal})`, { cause: err });
    }
    if (signal?.aborted === true) throw new KataError("CANCELLED", "boot cancelled by the caller");
    if (err instanceof KataError && err.code === "DEADLINE_EXCEEDED") {
      throw new KataError("DEADLINE_EXCEEDED", `no agent connection on ${describeEndpoint(vm.agentEndpoint)}`, { cause: err });
    }
    throw err;
  } finally {
    signal?.removeEventListener("abort", onCaller);
  }
}

/** Poll Check until SERVING; fail early (UNAVAILABLE) if the VM ends first. */
async function waitForCheck(health: BootedVm["health"], vm: Vm, deadline: number, deadlineMs: number, signal?: AbortSignal): Promise<number> {
  let ended: VmExit | undefined;
  void vm.wait().then((exit) => (ended = exit));
  let attempt = 0;
  let perAttemptMs = 1000;
  for (;;) {
    if (ended !== undefined) {
      throw new KataError("UNAVAILABLE", `the VM ended before its agent answered (${ended.reason}, VMM ${ended.vmmReason ?? `exit ${ended.exitCode ?? ended.signal}`})`);
    }
    if (signal?.aborted === true) throw new KataError("CANCELLED", "boot cancelled by the caller");
    const left = deadline - Date.now();
    if (left <= 0) throw new KataError("DEADLINE_EXCEEDED", `no Health.Check answer within ${deadlineMs} ms`);
    attempt++;
    const timeoutMs = Math.min(perAttemptMs, left);
    perAttemptMs = Math.min(perAttemptMs * 2, 4000);
    const started = Date.now();
    try {
      const res = await health.check({}, { timeoutMs, ...(signal === undefined ? {} : { signal }) });
      if (res.status === CheckResponse_ServingStatus.SERVING) return attempt;
    } catch (err) {
      // DEADLINE_EXCEEDED per attempt is the normal "not yet"; a closed connection means QEMU is gone.
      // Over a VMM's hybrid vsock a closed stream does not prove the VMM is gone, so its exit is
      // awaited only briefly (and never past the boot deadline): a VM that still runs behind a
      // closed agent connection fails the boot instead of hanging it.
      if (err instanceof KataError && err.code === "UNAVAILABLE") {
        const graceMs = Math.max(0, Math.min(exitGraceMs, deadline - Date.now()));
        await Promise.race([vm.wait(), sleep(graceMs, undefined, { ref: false })]);
        if (ended !== undefined) continue;
        throw new KataError("UNAVAILABLE", `the agent's connection closed while the VM still runs (${err.message})`, { cause: err });
      }
      if (err instanceof KataError && err.code === "CANCELLED") throw new KataError("CANCELLED", "boot cancelled by the caller");
      if (!(err instanceof KataError && err.code === "DEADLINE_EXCEEDED")) throw err;
    }
    // An answer other than SERVING, or an instant failure: pause before asking again.
    const spent = Date.now() - started;
    if (spent < 100) await new Promise((r) => setTimeout(r, 100 - spent));
  }
}

/** Default deadline for the KVM probe boot: a working KVM boots in about a second. */
export const kvmProbeDeadlineMs = 20_000;

/** Boot `config`'s guest under KVM until its agent answers; usable means it did within the deadline. */
export async function probeKvmBoot(config: VmConfig, hypervisor: Hypervisor, deadlineMs = kvmProbeDeadlineMs): Promise<{ usable: boolean; detail: string }> {
  const probe: VmConfig = { ...config, id: `${config.id}-kvmprobe`, stateDir: `${config.stateDir}-kvmprobe`, accel: "kvm" };
  try {
    const booted = await bootVm(probe, { deadlineMs, hypervisor });
    const ms = booted.timings.agentReadyMs;
    booted.agent.close();
    await booted.vm.stop();
    return { usable: true, detail: `a guest booted under KVM and its agent answered in ${(ms / 1000).toFixed(1)} s` };
  } catch (err) {
    const lines = (err instanceof Error ? err.message : String(err)).split("\n");
    const why = (lines[0] ?? "").replace(/; console log tail:$/, "");
    const lastConsoleLine = lines.slice(1).reverse().find((l) => l.trim() !== "" && l !== "(empty)")?.trim() ?? "no console output";
    return { usable: false, detail: `the guest did not boot under KVM: ${why} (console: ${lastConsoleLine.slice(0, 160)})` };
  }
}
