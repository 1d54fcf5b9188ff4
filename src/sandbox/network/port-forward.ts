// CRI port-forward into the VM. containerd 1.6 serves PortForward by entering the pod netns and
// dialing localhost:PORT there (tcp4 first), but the pod's servers listen in the guest. So, in the
// pod netns, TCP to 127.0.0.1 is DNATed to a private link address of the guest, carried over the
// tap and kept apart from the pod's network:
//
//   netns: tap0_kata 169.254.255.1 peer 169.254.255.2 (static neighbour: the guest's MAC),
//          route_localnet=1 on the tap (the kernel drops a 127.0.0.1 source leaving a non-loopback
//          device otherwise; the DNAT reroute happens before the SNAT below),
//          nat OUTPUT  -d 127.0.0.1 -o lo -p tcp -> DNAT 169.254.255.2
//          nat POSTROUTING -d 169.254.255.2 -o tap -> SNAT 169.254.255.1
//          filter INPUT from the tap: only replies (ct ESTABLISHED,RELATED), the rest dropped
//          tc on the tap's ingress, before the mirror: IPv4 to 169.254.255.1 and ARP asking for it
//          go to the netns stack instead of the veth
//          tc on the veth's ingress, before the mirror: IPv4 or ARP to or from the link /30 goes to
//          the netns stack instead of the guest, where raw PREROUTING drops the IPv4 and
//          arp_ignore=8 on the veth keeps the stack from answering the ARP: the pod's network
//          peers reach neither end of the link.
//   guest: eth0 also has 169.254.255.2/32 and a link route to 169.254.255.1 (docs/network.md).
// tc filters here have no action (a terminal u32 match returns TC_ACT_OK, i.e. "to the stack"):
// the gact module (pass/drop actions) is not loadable everywhere; mirred is needed anyway.
import { run, tryRun, type ExecResult } from "../../util/exec.js";
import type { UndoStack } from "../undo-stack.js";
import { inNetns, nsenterArgs } from "./netns-exec.js";

/** The netns end of the link (the tap). */
export const PF_HOST_ADDRESS = "169.254.255.1";
/** The guest end of the link (an extra /32 on the guest's first NIC). */
export const PF_GUEST_ADDRESS = "169.254.255.2";
const PF_LINK_CIDR = "169.254.255.0/30";
/** The same addresses as u32 words, for tc u32 matches on ARP (no `ip` shorthand there). */
const HOST_HEX = "0xa9feff01";
const LINK_HEX = "0xa9feff00";
/** Offsets in an IPv4-over-Ethernet ARP header: sender and target protocol address. */
const ARP_SPA = 14;
const ARP_TPA = 24;

/** iptables rules as [table, chain, rule...]; added with -A, removed with -D. */
export function portForwardRules(tap: string, veth: string): [string, string, ...string[]][] {
  return [
    ["raw", "PREROUTING", "-i", veth, "-d", PF_LINK_CIDR, "-j", "DROP"],
    ["raw", "PREROUTING", "-i", veth, "-s", PF_LINK_CIDR, "-j", "DROP"],
    ["nat", "OUTPUT", "-d", "127.0.0.1/32", "-o", "lo", "-p", "tcp", "-j", "DNAT", "--to-destination", PF_GUEST_ADDRESS],
    ["nat", "POSTROUTING", "-d", `${PF_GUEST_ADDRESS}/32`, "-o", tap, "-j", "SNAT", "--to-source", PF_HOST_ADDRESS],
    ["filter", "INPUT", "-i", tap, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ["filter", "INPUT", "-i", tap, "-j", "DROP"],
  ];
}

function ruleArgs(op: "-A" | "-D", [table, chain, ...rule]: [string, string, ...string[]]): string[] {
  return ["-w", "10", "-t", table, op, chain, ...rule];
}

/** A terminal u32 match without action: the frame goes to the netns stack, past the mirror. */
const TO_STACK = ["flowid", "ffff:1"];

/** tc filters on the tap's ingress that hand the link's traffic to the netns stack (prio 1, 2: before the mirror). */
export function tapExemptFilters(tap: string): string[][] {
  const base = ["filter", "add", "dev", tap, "parent", "ffff:"];
  return [
    [...base, "prio", "1", "protocol", "ip", "u32", "match", "ip", "dst", `${PF_HOST_ADDRESS}/32`, ...TO_STACK],
    [...base, "prio", "2", "protocol", "arp", "u32", "match", "u32", HOST_HEX, "0xffffffff", "at", String(ARP_TPA), ...TO_STACK],
  ];
}

/** tc filters on the veth's ingress that keep the link's addresses from the guest (the netns stack drops them). */
export function vethGuardFilters(veth: string): string[][] {
  const base = ["filter", "add", "dev", veth, "parent", "ffff:"];
  return [
    [...base, "prio", "1", "protocol", "ip", "u32", "match", "ip", "dst", PF_LINK_CIDR, ...TO_STACK],
    [...base, "prio", "2", "protocol", "ip", "u32", "match", "ip", "src", PF_LINK_CIDR, ...TO_STACK],
    [...base, "prio", "3", "protocol", "arp", "u32", "match", "u32", LINK_HEX, "0xfffffffc", "at", String(ARP_TPA), ...TO_STACK],
    // The sender address is not 4-byte aligned: two 16-bit halves.
    [...base, "prio", "4", "protocol", "arp", "u32", "match", "u16", "0xa9fe", "0xffff", "at", String(ARP_SPA), "match", "u16", "0xff00", "0xfffc", "at", String(ARP_SPA + 2), ...TO_STACK],
  ];
}

/** The rules as iptables-restore input (`--noflush`: only these lines change), one op for all. */
export function rulesRestoreInput(op: "-A" | "-D", tap: string, veth: string): string {
  const rules = portForwardRules(tap, veth);
  const lines: string[] = [];
  for (const table of [...new Set(rules.map(([t]) => t))]) {
    lines.push(`*${table}`);
    for (const [t, chain, ...rule] of rules) if (t === table) lines.push([op, chain, ...rule].join(" "));
    lines.push("COMMIT");
  }
  return `${lines.join("\n")}\n`;
}

function restoreIn(netnsPath: string, input: string): Promise<ExecResult> {
  return run("nsenter", nsenterArgs(netnsPath, "iptables-restore", ["-w", "10", "--noflush"]), { input, timeoutMs: 15_000 });
}

/** Removes our iptables rules from the netns (absent ones are fine): all at once, else one by one. */
export async function removePortForwardRules(netnsPath: string, tap: string, veth: string): Promise<void> {
  // iptables-restore is atomic: if one rule is already gone, nothing is deleted and we go rule by rule.
  if (await restoreIn(netnsPath, rulesRestoreInput("-D", tap, veth)).then(() => true, () => false)) return;
  for (const rule of portForwardRules(tap, veth)) {
    // -D fails when the rule is not there: that is the state we want.
    while ((await tryRun("nsenter", nsenterArgs(netnsPath, "iptables", ruleArgs("-D", rule)), { timeoutMs: 15_000 })) !== undefined);
  }
}

/**
 * Sets up the port-forward link beside a mirror made by mirrorVethToTap (its qdiscs exist), in a
 * handful of processes (tc and ip batches, one iptables-restore): pod start pays for each.
 * Undo: the rules and the veth's arp_ignore are put back explicitly; the tap's address, neighbour,
 * sysctl and filters go with the tap, the veth's filters with its ingress qdisc (both already on
 * `undo`).
 */
export async function enablePortForward(netnsPath: string, veth: string, tap: string, guestMac: string, undo: UndoStack): Promise<void> {
  const arpIgnore = `net.ipv4.conf.${veth}.arp_ignore`;
  const before = (await inNetns(netnsPath, "sysctl", ["-n", arpIgnore])).stdout.trim();
  await inNetns(netnsPath, "sysctl", ["-qw", `${arpIgnore}=8`, `net.ipv4.conf.${tap}.route_localnet=1`]);
  undo.push(`restore ${arpIgnore}`, async () => {
    await tryRun("nsenter", nsenterArgs(netnsPath, "sysctl", ["-qw", `${arpIgnore}=${before}`]), { timeoutMs: 15_000 });
  });
  const batch = (lines: string[][]): string => `${lines.map((l) => l.join(" ")).join("\n")}\n`;
  await run("nsenter", nsenterArgs(netnsPath, "tc", ["-batch", "-"]), { input: batch([...vethGuardFilters(veth), ...tapExemptFilters(tap)]), timeoutMs: 15_000 });
  const ipLines = [
    ["addr", "add", PF_HOST_ADDRESS, "peer", PF_GUEST_ADDRESS, "dev", tap],
    ["neigh", "replace", PF_GUEST_ADDRESS, "lladdr", guestMac, "dev", tap, "nud", "permanent"],
    // Loopback must be up for containerd's dial to 127.0.0.1 (CNI's loopback plugin does it; be sure).
    ["link", "set", "dev", "lo", "up"],
  ];
  await run("nsenter", nsenterArgs(netnsPath, "ip", ["-batch", "-"]), { input: batch(ipLines), timeoutMs: 15_000 });
  undo.push(`remove port-forward rules for ${tap}`, () => removePortForwardRules(netnsPath, tap, veth));
  await restoreIn(netnsPath, rulesRestoreInput("-A", tap, veth));
}
