// UpdateInterface in the guest: find the virtio-net NIC by the MAC QEMU gave it (the veth's), give
// it the veth's name, MTU and addresses, and bring it up. Replaces whatever addresses it had, so a
// repeated call converges on the same state.
import { KataError } from "../../util/errors.js";
import { ip, ipJson } from "./ip-tool.js";
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

export async function findLinkByMac(mac: string): Promise<string> {
  const links = await ipJson<IpLink>(["link", "show"]);
  const found = links.find((l) => l.address?.toLowerCase() === mac.toLowerCase() && l.link_type === "ether");
  if (found === undefined) {
    const seen = links.map((l) => `${l.ifname}=${l.address ?? "-"}`).join(", ");
    throw new KataError("NOT_FOUND", `no guest NIC has MAC ${mac} (guest links: ${seen}); is virtio_net loaded and the NIC attached?`);
  }
  return found.ifname;
}

export async function configureInterface(want: GuestInterface): Promise<GuestInterface> {
  if (!namePattern.test(want.name)) throw new KataError("INVALID_ARGUMENT", `interface name ${JSON.stringify(want.name)} must be 1-15 of [A-Za-z0-9_.-]`);
  const current = want.currentMac !== undefined && want.currentMac !== "" ? want.currentMac : want.mac;
  let name = await findLinkByMac(current);
  const newMac = current.toLowerCase() !== want.mac.toLowerCase();
  if (name !== want.name || newMac) {
    // A link must be down to be renamed or re-addressed.
    await ip(["link", "set", "dev", name, "down"]);
    // virtio-net passes the new MAC to the device (VIRTIO_NET_F_CTRL_MAC_ADDR), so QEMU's receive
    // filter accepts frames for it.
    if (newMac) await ip(["link", "set", "dev", name, "address", want.mac]);
    if (name !== want.name) await ip(["link", "set", "dev", name, "name", want.name]);
    name = want.name;
  }
  if (want.mtu > 0) await ip(["link", "set", "dev", name, "mtu", String(want.mtu)]);
  await ip(["addr", "flush", "dev", name, "scope", "global"]);
  for (const a of want.addresses) {
    await ip([a.family === 6 ? "-6" : "-4", "addr", "add", `${a.address}/${a.prefixLength}`, "dev", name]);
  }
  await ip(["link", "set", "dev", name, "up"]);
  return readInterface(name);
}

/** The NIC as the guest kernel has it now (global addresses only: link-local ones are the guest's own). */
export async function readInterface(name: string): Promise<GuestInterface> {
  const [link] = await ipJson<IpAddr>(["addr", "show", "dev", name]);
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
