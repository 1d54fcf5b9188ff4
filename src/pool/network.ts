// A pooled VM joins the pod's network: its tap (QEMU opened it in the VM's own netns, before the pod
// existed) moves into the pod netns, where it is mirrored with the CNI veth by tc as for a booted
// VM. QEMU's tap fd stays valid across the move. The guest NIC booted with a pool MAC: the agent
// finds it by that MAC and gives it the veth's (GuestInterface.currentMac).
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";
import { addPortForward, type PodNetwork } from "../sandbox/network/pod-network.js";
import { inspectNetns } from "../sandbox/network/inspect.js";
import { mirrorVethToExistingTap, removeTap } from "../sandbox/network/tc-mirror.js";
import type { UndoStack } from "../sandbox/undo-stack.js";
import type { PooledVmHandle } from "./protocol.js";

/** Pooled VMs have one NIC: a pod netns with another number of interfaces boots its own VM. */
export async function podInterfaceCount(netnsPath: string): Promise<number> {
  return (await inspectNetns(netnsPath)).interfaces.length;
}

export async function joinPodNetwork(netnsPath: string, vm: PooledVmHandle, undo: UndoStack): Promise<PodNetwork> {
  const { interfaces, routes } = await inspectNetns(netnsPath);
  const [iface] = interfaces;
  if (iface === undefined || interfaces.length !== 1) {
    throw new KataError("FAILED_PRECONDITION", `a pooled VM has one NIC; the pod netns ${netnsPath} has ${interfaces.length} interfaces`);
  }
  await run("nsenter", [`--net=/proc/${vm.qemuPid}/ns/net`, "--", "ip", "link", "set", "dev", vm.tapName, "netns", netnsPath], { timeoutMs: 15_000 });
  undo.push(`delete ${vm.tapName}`, () => removeTap(netnsPath, vm.tapName));
  await mirrorVethToExistingTap(netnsPath, iface.name, vm.tapName, iface.mtu, undo);
  const guest = await addPortForward(netnsPath, [{ ...iface, currentMac: vm.mac }], routes, undo);
  return { netnsPath, netDevices: [{ tapName: vm.tapName, mac: iface.mac }], ...guest };
}
