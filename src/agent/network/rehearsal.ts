// The network half of the pod path's rehearsal (a pooled VM, before any pod: ../pod-path-rehearsal.ts):
// adoption's UpdateNetwork on the pooled NIC with documentation addresses (RFC 5737 TEST-NET-1,
// never routed), then undone, so the guest kernel's paths for those netlink requests, virtio-net's
// open and control queue and the warm `ip`'s code are in TCG's cache when the pool offers the VM.
//
// Nothing leaves the guest: until adoption the pooled VM's tap sits down in a netns of the VM's own
// (docs/pool.md "Pod-neutral"), so whatever the guest sends while its NIC is up here (IPv6 DAD,
// router solicitation) is dropped by the host's tun driver. What the pod later sees is what an
// un-rehearsed NIC gives: the undo is read back in the same batch and checked (down, the pool MAC,
// its MTU, no address, no route); a NIC not left that way fails the rehearsal, and the pool then
// discards the VM.
import { access, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import type { GuestInterface, GuestRoute } from "../../protocol/contract/network.js";

/** A MAC the rehearsal gives the NIC for the live change, then takes back (locally administered). */
export const REHEARSAL_MAC = "02:00:5e:00:53:01";
/** The rehearsal's addresses: TEST-NET-1 (RFC 5737), checked gone afterwards. */
export const REHEARSAL_NET = "192.0.2.";

/** An Ethernet NIC of the guest as the pool booted it (down). */
export interface PooledNic {
  name: string;
  mac: string;
  mtu: number;
}

const IFF_UP = 0x1;
const ARPHRD_ETHER = "1";

/**
 * The guest's Ethernet NICs with a device behind them (virtio-net: what adoption configures; not the
 * kernel's own dummy0) that are down (a NIC already up is not the pool's to rehearse on).
 */
export async function downEthernetNics(sysClassNet = "/sys/class/net"): Promise<PooledNic[]> {
  const out: PooledNic[] = [];
  for (const name of (await readdir(sysClassNet)).sort()) {
    const read = (f: string): Promise<string> => readFile(join(sysClassNet, name, f), "utf8").then((s) => s.trim(), () => "");
    const [type, flags, mac, mtu, device] = await Promise.all([read("type"), read("flags"), read("address"), read("mtu"), access(join(sysClassNet, name, "device")).then(() => true, () => false)]);
    if (type !== ARPHRD_ETHER || !device || name === "lo" || (Number.parseInt(flags, 16) & IFF_UP) !== 0) continue;
    out.push({ name, mac, mtu: Number(mtu) || 1500 });
  }
  return out;
}

/** Adoption's UpdateNetwork for these NICs (as a CNI bridge pod's), with documentation addresses. */
export function rehearsalNetwork(nics: readonly PooledNic[]): { interfaces: GuestInterface[]; routes: GuestRoute[] } {
  const interfaces: GuestInterface[] = [];
  const routes: GuestRoute[] = [];
  nics.forEach((nic, i) => {
    const address = `${REHEARSAL_NET}${5 + i}`;
    interfaces.push({ name: nic.name, mac: REHEARSAL_MAC.replace(/01$/, (1 + i).toString(16).padStart(2, "0")), currentMac: nic.mac, mtu: nic.mtu, addresses: [{ family: 4, address, prefixLength: 24 }] });
    if (i === 0) routes.push({ dest: "", gateway: `${REHEARSAL_NET}1`, device: nic.name, source: "", scope: 0, family: 4 });
    routes.push({ dest: `${REHEARSAL_NET}0/24`, gateway: "", device: nic.name, source: address, scope: 253, family: 4 });
  });
  return { interfaces, routes };
}

/** Back to what the pool booted: no route, no address, down, the pool MAC and MTU; then read back. */
export function undoLines(nics: readonly PooledNic[]): string[][] {
  const lines: string[][] = [];
  for (const nic of nics) {
    lines.push(
      ["route", "flush", "dev", nic.name],
      ["addr", "flush", "dev", nic.name],
      ["link", "set", "dev", nic.name, "down"],
      ["link", "set", "dev", nic.name, "address", nic.mac],
      ["link", "set", "dev", nic.name, "mtu", String(nic.mtu)],
    );
  }
  for (const nic of nics) lines.push(["addr", "show", "dev", nic.name]);
  lines.push(["route", "show"]);
  return lines;
}

interface ShownLink {
  ifname?: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: unknown[];
}

/**
 * Throws unless the undo batch's answers (undoLines: one `addr show` per NIC, then `route show`,
 * which prints nothing when there is no route) show every NIC as the pool booted it and no route.
 */
export function checkRestored(nics: readonly PooledNic[], answers: readonly unknown[]): void {
  const problems: string[] = [];
  nics.forEach((nic, i) => {
    const link = (answers[i] as ShownLink[] | undefined)?.[0];
    if (link?.ifname !== nic.name) return problems.push(`${nic.name} not read back`);
    if ((link.address ?? "").toLowerCase() !== nic.mac.toLowerCase()) problems.push(`${nic.name} has MAC ${link.address} instead of ${nic.mac}`);
    if (link.mtu !== nic.mtu) problems.push(`${nic.name} has MTU ${link.mtu} instead of ${nic.mtu}`);
    if ((link.flags ?? []).includes("UP")) problems.push(`${nic.name} is still up`);
    if ((link.addr_info ?? []).length > 0) problems.push(`${nic.name} has ${link.addr_info?.length} address(es) left`);
    return undefined;
  });
  const routes = answers.slice(nics.length).flatMap((a) => (Array.isArray(a) ? a : []));
  if (routes.length > 0) problems.push(`${routes.length} route(s) left: ${JSON.stringify(routes)}`);
  if (problems.length > 0) throw new KataError("INTERNAL", `the network rehearsal did not leave the guest's network as the pool booted it: ${problems.join("; ")}`);
}
