// The guest's view of the pod network, in types both sides import (the proto stays at the edges:
// network-proto.ts). Mirrors what the host found on the CNI veth.

export type IpFamily = 4 | 6;

export interface GuestIp {
  family: IpFamily;
  address: string;
  prefixLength: number;
}

export interface GuestInterface {
  /** Name the guest NIC gets (the veth's, e.g. "eth0"). */
  name: string;
  /** The NIC is found by this MAC: QEMU gave the virtio-net device the veth's MAC. */
  mac: string;
  /** The NIC's MAC now, when it is not `mac` yet (a pooled VM's NIC): found by it, then given `mac`. */
  currentMac?: string;
  mtu: number;
  addresses: GuestIp[];
}

export interface GuestRoute {
  /** CIDR; "" or "default" for the default route. */
  dest: string;
  /** "" for a link-scope route. */
  gateway: string;
  device: string;
  /** Preferred source address; "" for none. */
  source: string;
  /** RT_SCOPE_*: 0 universe, 253 link, 254 host. */
  scope: number;
  family: IpFamily;
}
