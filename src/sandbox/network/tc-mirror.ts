// One tap per CNI interface, in the pod netns, with traffic mirrored both ways by tc, as Kata's
// "tcfilter" model does: an ingress qdisc on each side and a match-all u32 filter whose action is
// `mirred egress redirect` to the other side. Frames arriving on the veth leave through the tap
// (into QEMU, so the guest), and frames QEMU writes to the tap leave through the veth. The netns's
// own stack never sees pod traffic, so the veth may keep its address (see docs/network.md).
import { tryRun } from "../../util/exec.js";
import type { UndoStack } from "../undo-stack.js";
import { inNetns, nsenterArgs } from "./netns-exec.js";

/** A u32 filter that matches every frame: the first byte ANDed with 0 equals 0. */
function redirectFilter(from: string, to: string): string[] {
  return ["filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to];
}

async function linkExists(netnsPath: string, name: string): Promise<boolean> {
  return (await tryRun("nsenter", nsenterArgs(netnsPath, "ip", ["link", "show", "dev", name]), { timeoutMs: 15_000 })) !== undefined;
}

/**
 * Runs `remove` on a link of the netns unless the link is absent. The pod's teardown can race
 * the runtime's own: containerd may run CNI DEL and remove the netns while a lost pod's Delete
 * still tears down, so a link (or the whole netns) that went between the check and the removal
 * is as good as removed; only a link that is still there after a failure is a failure.
 */
export async function removeLinkPart(netnsPath: string, dev: string, remove: () => Promise<unknown>): Promise<void> {
  if (!(await linkExists(netnsPath, dev))) return;
  try {
    await remove();
  } catch (err) {
    if (await linkExists(netnsPath, dev)) throw err;
  }
}

/** Removes the veth's ingress qdisc (and with it our filter); a veth CNI already deleted is fine. */
export function removeIngress(netnsPath: string, dev: string): Promise<void> {
  return removeLinkPart(netnsPath, dev, () => inNetns(netnsPath, "tc", ["qdisc", "del", "dev", dev, "handle", "ffff:", "ingress"]));
}

/** Deletes the tap (its qdisc and filter go with it); absent is fine. */
export function removeTap(netnsPath: string, tap: string): Promise<void> {
  return removeLinkPart(netnsPath, tap, () => inNetns(netnsPath, "ip", ["link", "del", "dev", tap]));
}

/**
 * Creates `tap` beside `veth` and mirrors the two; every step's undo goes on `undo` as it
 * succeeds, so a failure half-way leaves nothing of ours in the netns.
 */
export async function mirrorVethToTap(netnsPath: string, veth: string, tap: string, mtu: number, undo: UndoStack): Promise<void> {
  await inNetns(netnsPath, "ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
  undo.push(`delete ${tap}`, () => removeTap(netnsPath, tap));
  await mirrorVethToExistingTap(netnsPath, veth, tap, mtu, undo);
}

/**
 * The same for a tap that is already in the netns (a pooled VM's, moved in at adoption: a moved
 * link is down). The tap comes up last, once both redirects are in: an adopted guest may be
 * sending already (UpdateNetwork runs beside this), and none of its frames may reach the pod
 * netns's own stack.
 */
export async function mirrorVethToExistingTap(netnsPath: string, veth: string, tap: string, mtu: number, undo: UndoStack): Promise<void> {
  const tc = (args: string[]) => inNetns(netnsPath, "tc", args);
  await tc(["qdisc", "add", "dev", veth, "handle", "ffff:", "ingress"]);
  undo.push(`remove ingress qdisc of ${veth}`, () => removeIngress(netnsPath, veth));
  await tc(redirectFilter(veth, tap));
  await tc(["qdisc", "add", "dev", tap, "handle", "ffff:", "ingress"]);
  await tc(redirectFilter(tap, veth));
  await inNetns(netnsPath, "ip", ["link", "set", "dev", tap, "mtu", String(mtu), "up"]);
}
