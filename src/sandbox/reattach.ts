// Taking over a running pod in a process that did not create it (a node shim server restarted
// after a crash or an upgrade), from the sandbox's state record: the VM is checked (its QEMU pid
// still runs QEMU) and reached again over QMP (QEMU's QMP server takes a new client once the old
// one is gone), a trim its dead owner left half-done is undone (the VM resumed), the agent is
// reached over a new connection (QEMU's agent chardev likewise) and must answer a Health.Check,
// and virtiofsd is watched like a pooled VM's (not our child). Nothing of the pod is changed: a
// take-over that fails closes what it opened and leaves the pod as it was, for another attempt or
// for its clean-up (stale.ts). The teardown steps of a taken-over pod are pushed here, in the
// order Sandbox.create pushes its own (docs/shim.md "Reattaching a running pod").
import { randomInt } from "node:crypto";
import { rm } from "node:fs/promises";
import { AdoptedHelper, AdoptedVm, pidGone } from "../hypervisor/qemu/adopted-vm.js";
import type { ResolvedAccel } from "../hypervisor/types.js";
import { TtrpcClient } from "../protocol/ttrpc/index.js";
import { describeError, KataError } from "../util/errors.js";
import { AgentClient } from "./agent-client.js";
import { sandboxLayout, type SandboxLayout } from "./guest-layout.js";
import { unmountAll } from "./mounts.js";
import { detachStalePodNetwork } from "./network/pod-network.js";
import { readRecord, type SandboxRecord } from "./state-file.js";
import type { UndoStack } from "./undo-stack.js";
import { virtiofsdPidFile } from "./virtiofsd.js";

/** What a take-over needs from the record, checked. */
export interface ReattachTarget {
  vmPid: number;
  vmStateDir: string;
  accel: ResolvedAccel;
  virtiofsdPid?: number;
}

/** The running VM, reached again. */
export interface TakenOverVm {
  vm: AdoptedVm;
  agent: TtrpcClient;
  virtiofsd?: AdoptedHelper;
}

/**
 * The record's take-over fields, or FAILED_PRECONDITION naming the pod and what is missing (a pod
 * still being created or already being removed, a VMM other than QEMU, a record written by an
 * older kata-ts); NOT_FOUND for a container the caller names that the pod never had. Pure.
 */
export function reattachTarget(id: string, rec: SandboxRecord, containers: readonly string[]): ReattachTarget {
  const cannot = (why: string): KataError => new KataError("FAILED_PRECONDITION", `pod ${id} cannot be reattached: ${why}; clean it up instead`);
  if (rec.id !== id) throw cannot(`its state record names sandbox ${JSON.stringify(rec.id)}`);
  if (rec.status !== "ready") throw cannot(`its sandbox is ${rec.status}, not ready`);
  if ((rec.vmm ?? "qemu") !== "qemu") throw cannot(`its VMM is ${rec.vmm}; only a QEMU VM can be taken over`);
  if (rec.vmPid === undefined || rec.vmStateDir === undefined || rec.accel === undefined) {
    const missing = [rec.vmPid === undefined ? "vmPid" : "", rec.vmStateDir === undefined ? "vmStateDir" : "", rec.accel === undefined ? "accel" : ""].filter((f) => f !== "");
    throw cannot(`its state record lacks ${missing.join(", ")} (written by a kata-ts without reattach)`);
  }
  for (const c of containers) {
    if (rec.containers[c] === undefined) throw new KataError("NOT_FOUND", `pod ${id} has no container ${c} in its state record; it cannot be reattached`);
  }
  return { vmPid: rec.vmPid, vmStateDir: rec.vmStateDir, accel: rec.accel, ...(rec.virtiofsdPid === undefined ? {} : { virtiofsdPid: rec.virtiofsdPid }) };
}

/** The VM reached again within `timeoutMs`; on failure nothing opened stays open. */
export async function takeOverVm(id: string, t: ReattachTarget, timeoutMs: number): Promise<TakenOverVm> {
  const deadline = Date.now() + timeoutMs;
  const left = (): number => Math.max(1, deadline - Date.now());
  if (await pidGone(t.vmPid, /^qemu/)) {
    throw new KataError("FAILED_PRECONDITION", `pod ${id} cannot be reattached: its VM is gone (QEMU pid ${t.vmPid} no longer runs); clean it up instead`);
  }
  if (t.virtiofsdPid !== undefined && (await pidGone(t.virtiofsdPid, /^virtiofsd/))) {
    throw new KataError("FAILED_PRECONDITION", `pod ${id} cannot be reattached: its virtiofsd (pid ${t.virtiofsdPid}) is gone, so its containers have no file system; clean it up instead`);
  }
  let vm: AdoptedVm;
  try {
    vm = await AdoptedVm.attach({ id, pid: t.vmPid, stateDir: t.vmStateDir, accel: t.accel, timeoutMs: left() });
  } catch (err) {
    throw new KataError("UNAVAILABLE", `pod ${id} cannot be reattached: its QEMU (pid ${t.vmPid}) does not answer on QMP in ${t.vmStateDir}: ${describeError(err)}`, { cause: err });
  }
  let agent: TtrpcClient | undefined;
  try {
    await vm.releaseStaleTrim();
    // Stream ids far from the dead owner's (which start at 1): an answer the agent wrote to it as
    // it died can reach this connection (docs/shim.md "Reattaching a running pod"), and is then ignored.
    agent = await TtrpcClient.connect(vm.agentSocketPath, { timeoutMs: left(), firstStreamId: 2 * randomInt(2 ** 29, 2 ** 30) + 1 });
    await new AgentClient(agent).check(left());
  } catch (err) {
    agent?.close();
    vm.detach();
    throw new KataError("UNAVAILABLE", `pod ${id} cannot be reattached: its guest agent does not answer on ${vm.agentSocketPath} (is another process still connected to it?): ${describeError(err)}`, { cause: err });
  }
  const virtiofsd = t.virtiofsdPid === undefined ? undefined : new AdoptedHelper(t.virtiofsdPid, /^virtiofsd/);
  return { vm, agent, ...(virtiofsd === undefined ? {} : { virtiofsd }) };
}

/** The pod's teardown, pushed as Sandbox.create would have (the agent connection is the caller's). */
export function pushTeardown(undo: UndoStack, layout: SandboxLayout, rec: SandboxRecord, parts: TakenOverVm): void {
  undo.push("remove state dir", () => rm(layout.stateDir, { recursive: true, force: true }));
  undo.push("unmount shared dir", () => unmountAll(rec.sharedDir));
  const net = rec.network;
  if (net !== undefined) undo.push("detach the pod network", () => detachStalePodNetwork(net));
  const pidFile = rec.virtiofsdPidFile ?? virtiofsdPidFile(layout.virtiofsdSocket);
  undo.push("remove virtiofsd's pid file", () => rm(pidFile, { force: true }));
  const vfs = parts.virtiofsd;
  if (vfs !== undefined) undo.push("stop virtiofsd", () => vfs.stop());
  undo.push("stop VM", async () => {
    await parts.vm.stop({ timeoutMs: 3000 });
  });
}

/** The containers a pod's state record names (the guest has them): the pod's own (pause) container among them once it ran in the guest. */
export async function recordedContainers(id: string): Promise<string[]> {
  return Object.keys((await readRecord(sandboxLayout(id).stateFile)).containers);
}
