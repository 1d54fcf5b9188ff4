// A pooled VM joins the pod's network: its tap (QEMU opened it in the VM's own netns, before the pod
// existed) moves into the pod netns, where it is mirrored with the CNI veth by tc as for a booted
// VM. QEMU's tap fd stays valid across the move. The guest NIC booted with a pool MAC: the agent
// finds it by that MAC and gives it the veth's (GuestInterface.currentMac).
import { KataError } from "../util/errors.js";
import { run } from "../util/exec.js";
import { addPortForward, guestNetworkView, type GuestNetworkView, type PodNetwork } from "../sandbox/network/pod-network.js";
import { inspectNetns, type NetnsSnapshot } from "../sandbox/network/inspect.js";
import { mirrorVethToExistingTap, removeTap } from "../sandbox/network/tc-mirror.js";
import type { UndoStack } from "../sandbox/undo-stack.js";
import type { PooledVmHandle } from "./protocol.js";

/** What CNI made in the pod netns: read once, before the take (pooled VMs have one NIC), used by the join. */
export function readPodNetns(netnsPath: string): Promise<NetnsSnapshot> {
  return inspectNetns(netnsPath);
}

/** What the adopted VM's guest is told (UpdateNetwork): known from the netns read before the take. */
export function pooledGuestNetwork(pod: NetnsSnapshot, vm: PooledVmHandle): GuestNetworkView {
  return guestNetworkView(pod.interfaces.map((i, n) => (n === 0 ? { ...i, currentMac: vm.mac } : i)), pod.routes);
}

/** `pod` is the netns as read before the take (readPodNetns): nothing changes it between take and join. */
export async function joinPodNetwork(netnsPath: string, pod: NetnsSnapshot, vm: PooledVmHandle, undo: UndoStack): Promise<PodNetwork> {
  const { interfaces, routes } = pod;
  const [iface] = interfaces;
  if (iface === undefined || interfaces.length !== 1) {
    throw new KataError("FAILED_PRECONDITION", `a pooled VM has one NIC; the pod netns ${netnsPath} has ${interfaces.length} interfaces`);
  }
  await run("nsenter", [`--net=/proc/${vm.qemuPid}/ns/net`, "--", "ip", "link", "set", "dev", vm.tapName, "netns", netnsPath], { timeoutMs: 15_000 });
  undo.push(`delete ${vm.tapName}`, () => removeTap(netnsPath, vm.tapName));
  await mirrorVethToExistingTap(netnsPath, iface.name, vm.tapName, iface.mtu, undo);
  // The guest was told the same (pooledGuestNetwork) while this ran.
  const guest = await addPortForward(netnsPath, [{ ...iface, currentMac: vm.mac }], routes, undo);
  return { netnsPath, netDevices: [{ tapName: vm.tapName, mac: iface.mac }], ...guest };
}
