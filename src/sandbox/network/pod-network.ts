// The pod's network, host side: read what CNI made in the pod netns, put a mirrored tap beside
// each interface, and describe the result both to the VMM (one virtio-net NIC per tap, with the
// veth's MAC) and to the guest (the veth's name, addresses, MTU and routes).
import { access } from "node:fs/promises";
import type { GuestInterface, GuestRoute } from "../../protocol/contract/network.js";
import type { NetDeviceConfig } from "../../hypervisor/types.js";
import { KataError } from "../../util/errors.js";
import { createLogger } from "../../util/log.js";
import type { AgentClient } from "../agent-client.js";
import type { UndoStack } from "../undo-stack.js";
import { inspectNetns, tapName } from "./inspect.js";
import { enablePortForward, PF_GUEST_ADDRESS, PF_HOST_ADDRESS, removePortForwardRules } from "./port-forward.js";
import { mirrorVethToTap, removeIngress, removeTap } from "./tc-mirror.js";

const log = createLogger("sandbox.network");

export interface PodNetwork {
  netnsPath: string;
  /** For the VMM: QEMU must run in netnsPath to open these taps. */
  netDevices: NetDeviceConfig[];
  /** For the guest agent (UpdateInterface, one each). */
  interfaces: GuestInterface[];
  /** For the guest agent (UpdateRoutes, all at once). */
  routes: GuestRoute[];
}

/** At most this many NICs (the VMM's limit). */
const MAX_INTERFACES = 8;

export async function attachPodNetwork(netnsPath: string, undo: UndoStack): Promise<PodNetwork> {
  const { interfaces, routes } = await inspectNetns(netnsPath).catch((err: unknown) => {
    throw new KataError("FAILED_PRECONDITION", `cannot read the pod network namespace ${netnsPath} (did the CNI plugin run?)`, { cause: err });
  });
  if (interfaces.length > MAX_INTERFACES) {
    throw new KataError("INVALID_ARGUMENT", `the pod netns has ${interfaces.length} interfaces; a kata-ts VM takes at most ${MAX_INTERFACES}`);
  }
  const netDevices: NetDeviceConfig[] = [];
  for (const [i, iface] of interfaces.entries()) {
    const tap = tapName(i);
    await mirrorVethToTap(netnsPath, iface.name, tap, iface.mtu, undo);
    netDevices.push({ tapName: tap, mac: iface.mac });
  }
  log.debug({ netnsPath, interfaces, routes }, "pod network mirrored into taps");
  return { netnsPath, netDevices, ...(await addPortForward(netnsPath, interfaces, routes, undo)) };
}

/**
 * What the guest is told about the pod network (UpdateNetwork): the CNI interfaces and routes plus
 * the port-forward link over the first NIC (port-forward.ts). Pure: an adopted VM's guest is told
 * while the host side (addPortForward) is still being set up.
 */
export function guestNetworkView(interfaces: GuestInterface[], routes: GuestRoute[]): GuestNetworkView {
  const first = interfaces[0];
  if (first === undefined) return { interfaces, routes };
  const guestInterfaces = [{ ...first, addresses: [...first.addresses, { family: 4 as const, address: PF_GUEST_ADDRESS, prefixLength: 32 }] }, ...interfaces.slice(1)];
  const guestRoutes = [...routes, { dest: `${PF_HOST_ADDRESS}/32`, gateway: "", device: first.name, source: PF_GUEST_ADDRESS, scope: 253, family: 4 as const }];
  return { interfaces: guestInterfaces, routes: guestRoutes };
}

export type GuestNetworkView = Pick<PodNetwork, "interfaces" | "routes">;

/** After the mirror (booted or adopted VM, tapName(0) in the netns): port-forward over the first NIC. */
export async function addPortForward(netnsPath: string, interfaces: GuestInterface[], routes: GuestRoute[], undo: UndoStack): Promise<GuestNetworkView> {
  const first = interfaces[0];
  if (first === undefined) {
    log.debug({ netnsPath }, "pod netns has no interface: no NIC, no port-forward");
    return { interfaces, routes };
  }
  // Port-forward (CRI PortForward dials localhost in the netns) reaches the guest over the first
  // NIC's tap: see port-forward.ts.
  await enablePortForward(netnsPath, first.name, tapName(0), first.mac, undo).catch((err: unknown) => {
    throw new KataError("FAILED_PRECONDITION", `cannot set up port-forward in the pod network namespace ${netnsPath} (needs iptables with nat, raw and conntrack; run kata-ts check): ${(err as Error).message}`, { cause: err });
  });
  return guestNetworkView(interfaces, routes);
}

/**
 * The guest side: each NIC takes its veth's name, MTU and addresses; then the routes go in. One
 * UpdateNetwork call; an agent older than it (a VM pooled before an upgrade) answers UNIMPLEMENTED
 * and gets UpdateInterface per NIC and UpdateRoutes, as before.
 */
export async function configureGuestNetwork(agent: Pick<AgentClient, "updateInterface" | "updateRoutes" | "updateNetwork">, net: GuestNetworkView): Promise<void> {
  if (net.interfaces.length === 0 && net.routes.length === 0) return;
  try {
    await agent.updateNetwork(net.interfaces, net.routes);
    return;
  } catch (err) {
    if (!isUnimplemented(err)) throw err;
    log.info("the guest agent has no UpdateNetwork (an older agent): UpdateInterface and UpdateRoutes instead");
  }
  for (const iface of net.interfaces) await agent.updateInterface(iface);
  if (net.routes.length > 0) await agent.updateRoutes(net.routes);
}

/** The agent does not know the method (ttRPC status UNIMPLEMENTED). */
export function isUnimplemented(err: unknown): boolean {
  return err instanceof KataError && err.code === "UNIMPLEMENTED";
}

/** What the sandbox's state file keeps so another process can undo the mirror (stale cleanup). */
export interface PodNetworkRecord {
  netnsPath: string;
  veths: string[];
  taps: string[];
}

export function podNetworkRecord(net: PodNetwork): PodNetworkRecord {
  return { netnsPath: net.netnsPath, veths: net.interfaces.map((i) => i.name), taps: net.netDevices.map((d) => d.tapName) };
}

/**
 * Undo a mirror whose owner died (best effort, every step tried): the netns may already be gone
 * (then so are the taps), and CNI may have deleted the veths.
 */
export async function detachStalePodNetwork(rec: PodNetworkRecord): Promise<void> {
  if (!(await access(rec.netnsPath).then(() => true, () => false))) return;
  for (const veth of rec.veths) await removeIngress(rec.netnsPath, veth).catch((err: unknown) => log.warn({ err, veth }, "stale ingress qdisc not removed"));
  if (rec.taps[0] !== undefined && rec.veths[0] !== undefined) await removePortForwardRules(rec.netnsPath, rec.taps[0], rec.veths[0]).catch((err: unknown) => log.warn({ err }, "stale port-forward rules not removed"));
  for (const tap of rec.taps) await removeTap(rec.netnsPath, tap).catch((err: unknown) => log.warn({ err, tap }, "stale tap not removed"));
}
