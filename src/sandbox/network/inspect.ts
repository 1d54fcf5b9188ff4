// What CNI left in the pod netns: its interfaces (not lo, not our taps) with their MAC, MTU and
// addresses, and the routes through them. Parsing is pure (unit-tested on recorded `ip -j` output);
// reading runs iproute2 in the netns.
import type { GuestInterface, GuestRoute, IpFamily } from "../../protocol/contract/network.js";
import { ipJsonIn } from "./netns-exec.js";

export interface IpAddrJson {
  ifname: string;
  address?: string;
  mtu?: number;
  link_type?: string;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

export interface IpRouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  scope?: string;
  type?: string;
}

/** Our tap devices are named like this; they are never mirrored themselves. */
export const TAP_PREFIX = "tap";
export const TAP_SUFFIX = "_kata";

export function tapName(index: number): string {
  return `${TAP_PREFIX}${index}${TAP_SUFFIX}`;
}

export function isOurTap(name: string): boolean {
  return name.startsWith(TAP_PREFIX) && name.endsWith(TAP_SUFFIX);
}

const scopes: Record<string, number> = { global: 0, universe: 0, link: 253, host: 254 };

export function parseInterfaces(links: readonly IpAddrJson[]): GuestInterface[] {
  return links
    .filter((l) => l.link_type === "ether" && l.ifname !== "lo" && !isOurTap(l.ifname) && l.address !== undefined)
    .map((l) => ({
      name: l.ifname,
      mac: l.address as string,
      mtu: l.mtu ?? 1500,
      // Link-local IPv6 addresses are per-link: the guest makes its own.
      addresses: (l.addr_info ?? [])
        .filter((a) => (a.family === "inet" || a.family === "inet6") && a.scope === "global")
        .map((a) => ({ family: (a.family === "inet6" ? 6 : 4) as IpFamily, address: a.local, prefixLength: a.prefixlen })),
    }));
}

export function parseRoutes(family: IpFamily, routes: readonly IpRouteJson[], devices: readonly string[]): GuestRoute[] {
  return routes
    .filter((r) => r.dev !== undefined && devices.includes(r.dev))
    .filter((r) => (r.type ?? "unicast") === "unicast")
    .filter((r) => !(family === 6 && r.dst.startsWith("fe80:")))
    .map((r) => ({
      dest: r.dst === "default" ? "" : r.dst,
      gateway: r.gateway ?? "",
      device: r.dev as string,
      source: r.prefsrc ?? "",
      scope: scopes[r.scope ?? "global"] ?? 0,
      family,
    }));
}

export interface NetnsSnapshot {
  interfaces: GuestInterface[];
  routes: GuestRoute[];
}

/** The three reads are independent (each an `nsenter ip` pair): at once, on pod start's critical path. */
export async function inspectNetns(netnsPath: string): Promise<NetnsSnapshot> {
  const [links, v4, v6] = await Promise.all([
    ipJsonIn<IpAddrJson>(netnsPath, ["addr", "show"]),
    ipJsonIn<IpRouteJson>(netnsPath, ["-4", "route", "show"]),
    ipJsonIn<IpRouteJson>(netnsPath, ["-6", "route", "show"]),
  ]);
  const interfaces = parseInterfaces(links);
  const names = interfaces.map((i) => i.name);
  return { interfaces, routes: [...parseRoutes(4, v4, names), ...parseRoutes(6, v6, names)] };
}
