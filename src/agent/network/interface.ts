// UpdateInterface in the guest: find the virtio-net NIC by the MAC QEMU gave it (the veth's), give
// it the veth's name, MTU and addresses, and bring it up. Replaces whatever addresses it had, so a
// repeated call converges on the same state.
import { KataError } from "../../util/errors.js";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { ipBatch, ipJson } from "./ip-tool.js";
import type { GuestInterface } from "../../protocol/contract/network.js";

interface IpLink {
  ifname: string;
  address?: string;
  mtu?: number;
  link_type?: string;
}

interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
}

interface IpAddr extends IpLink {
  addr_info?: IpAddrInfo[];
}

const namePattern = /^[A-Za-z0-9_.-]{1,15}$/;

/** ARPHRD_ETHER in /sys/class/net/<if>/type. */
const ARPHRD_ETHER = "1";

/** The Ethernet link with this MAC, read from sysfs: no process to spawn (each costs ~100 ms under TCG). */
export async function findLinkByMac(mac: string, sysClassNet = "/sys/class/net"): Promise<string> {
  const seen: string[] = [];
  for (const ifname of await readdir(sysClassNet)) {
    const address = (await readFile(join(sysClassNet, ifname, "address"), "utf8").catch(() => "")).trim();
    const type = (await readFile(join(sysClassNet, ifname, "type"), "utf8").catch(() => "")).trim();
    if (type === ARPHRD_ETHER && address.toLowerCase() === mac.toLowerCase()) return ifname;
    seen.push(`${ifname}=${address || "-"}`);
  }
  throw new KataError("NOT_FOUND", `no guest NIC has MAC ${mac} (guest links: ${seen.join(", ")}); is virtio_net loaded and the NIC attached?`);
}

/**
 * The NIC takes the wanted name, MAC, MTU and addresses in one `ip -batch` (one process, stops at
 * the first failing line), whose last line reads the result back.
 */
export async function configureInterface(want: GuestInterface): Promise<GuestInterface> {
  const lines = interfaceLines(want, await findInterface(want));
  lines.push(["addr", "show", "dev", want.name]);
  const shown = (await ipBatch(undefined, lines)).at(-1) as IpAddr[] | undefined;
  return interfaceShown(shown, want.name);
}

/** The guest's current name of the NIC `want` describes (found by its current MAC). */
export async function findInterface(want: GuestInterface): Promise<string> {
  if (!namePattern.test(want.name)) throw new KataError("INVALID_ARGUMENT", `interface name ${JSON.stringify(want.name)} must be 1-15 of [A-Za-z0-9_.-]`);
  return findLinkByMac(currentMac(want));
}

function currentMac(want: GuestInterface): string {
  return want.currentMac !== undefined && want.currentMac !== "" ? want.currentMac : want.mac;
}

/** The `ip -batch` lines that make the NIC now named `name` what `want` says, up (no read-back). */
export function interfaceLines(want: GuestInterface, name: string): string[][] {
  const newMac = currentMac(want).toLowerCase() !== want.mac.toLowerCase();
  const lines: string[][] = [];
  // A link must be down to be renamed. Its MAC changes live: virtio-net marks its devices
  // IFF_LIVE_ADDR_CHANGE and passes the new MAC to the device (VIRTIO_NET_F_CTRL_MAC_ADDR), so
  // QEMU's receive filter accepts frames for it. (A pooled VM's NIC is down until adoption anyway.)
  if (name !== want.name) lines.push(["link", "set", "dev", name, "down"]);
  if (newMac) lines.push(["link", "set", "dev", name, "address", want.mac]);
  if (name !== want.name) lines.push(["link", "set", "dev", name, "name", want.name]);
  if (want.mtu > 0) lines.push(["link", "set", "dev", want.name, "mtu", String(want.mtu)]);
  lines.push(["addr", "flush", "dev", want.name, "scope", "global"]);
  // The family comes from the address (a batch line takes no -4/-6).
  for (const a of want.addresses) lines.push(["addr", "add", `${a.address}/${a.prefixLength}`, "dev", want.name]);
  lines.push(["link", "set", "dev", want.name, "up"]);
  return lines;
}

/** An `addr show dev NAME` answer as the agent API's interface. */
export function interfaceShown(shown: unknown, name: string): GuestInterface {
  return toGuestInterface((shown as IpAddr[] | undefined)?.[0], name);
}

/** The NIC as the guest kernel has it now (global addresses only: link-local ones are the guest's own). */
export async function readInterface(name: string): Promise<GuestInterface> {
  const [link] = await ipJson<IpAddr>(["addr", "show", "dev", name]);
  return toGuestInterface(link, name);
}

function toGuestInterface(link: IpAddr | undefined, name: string): GuestInterface {
  if (link === undefined) throw new KataError("NOT_FOUND", `guest NIC ${name} vanished`);
  return {
    name: link.ifname,
    mac: link.address ?? "",
    mtu: link.mtu ?? 0,
    addresses: (link.addr_info ?? [])
      .filter((a) => a.scope === "global")
      .map((a) => ({ family: a.family === "inet6" ? 6 : 4, address: a.local, prefixLength: a.prefixlen })),
  };
}
