// The agent API's network messages <-> the contract's network types, both ways: used by the agent's
// service (agent/network/service.ts) and by the host's agent client, so the two sides cannot drift.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { IPFamily, type Interface, type InterfaceSchema, type Route, type RouteSchema } from "../gen/katats/agent/v1/agent_pb.js";
import type { GuestInterface, GuestRoute, IpFamily } from "./network.js";

const family = (f: IPFamily): IpFamily => (f === IPFamily.IP_FAMILY_V6 ? 6 : 4);
const protoFamily = (f: IpFamily): IPFamily => (f === 6 ? IPFamily.IP_FAMILY_V6 : IPFamily.IP_FAMILY_V4);

export function toProtoInterface(i: GuestInterface): MessageInitShape<typeof InterfaceSchema> {
  return {
    name: i.name,
    hwAddr: i.mac,
    currentHwAddr: i.currentMac ?? "",
    mtu: i.mtu,
    ipAddresses: i.addresses.map((a) => ({ family: protoFamily(a.family), address: a.address, prefixLength: a.prefixLength })),
  };
}

export function fromProtoInterface(i: Interface): GuestInterface {
  return {
    name: i.name,
    mac: i.hwAddr,
    ...(i.currentHwAddr === "" ? {} : { currentMac: i.currentHwAddr }),
    mtu: i.mtu,
    addresses: i.ipAddresses.map((a) => ({ family: family(a.family), address: a.address, prefixLength: a.prefixLength })),
  };
}

export const toProtoRoute = (r: GuestRoute): MessageInitShape<typeof RouteSchema> => ({ ...r, family: protoFamily(r.family) });

export const fromProtoRoute = (r: Route): GuestRoute => ({
  dest: r.dest,
  gateway: r.gateway,
  device: r.device,
  source: r.source,
  scope: r.scope,
  family: family(r.family),
});
