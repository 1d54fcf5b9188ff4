// UpdateRoutes in the guest: the named devices' routes become exactly the given ones. IPv4 routes
// on those devices are flushed first (including the kernel's own subnet routes, which the host's
// list carries too); then link-scope routes go in before the routes whose gateways they reach.
import { KataError } from "../../util/errors.js";
import { ipBatch, ipJson } from "./ip-tool.js";
import type { GuestRoute } from "../../protocol/contract/network.js";

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  scope?: string;
  protocol?: string;
}

const scopeNames: Record<number, string> = { 0: "global", 253: "link", 254: "host" };

export function routeArgs(r: GuestRoute): string[] {
  return [r.family === 6 ? "-6" : "-4", ...routeLine(r)];
}

/** `route replace ...` without the family option (a batch line: the batch has the family). */
export function routeLine(r: GuestRoute): string[] {
  if (r.device === "") throw new KataError("INVALID_ARGUMENT", `route to ${r.dest || "default"} names no device`);
  const args = ["route", "replace", r.dest === "" ? "default" : r.dest];
  if (r.gateway !== "") args.push("via", r.gateway);
  args.push("dev", r.device);
  if (r.source !== "") args.push("src", r.source);
  const scope = scopeNames[r.scope];
  if (scope !== undefined && r.scope !== 0) args.push("scope", scope);
  return args;
}

/** Gateway-less (link) routes first: a gateway must be reachable when its route is added. */
export function orderRoutes(routes: readonly GuestRoute[]): GuestRoute[] {
  return [...routes].sort((a, b) => Number(a.gateway !== "") - Number(b.gateway !== ""));
}

/** The devices the routes name. */
export function routeDevices(routes: readonly GuestRoute[]): string[] {
  return [...new Set(routes.map((r) => r.device))].filter((d) => d !== "");
}

/**
 * The IPv4 part as batch lines: the devices' IPv4 routes flushed (a family-less `route flush`
 * and `route show` are IPv4's), the IPv4 routes added, link routes first; no read-back.
 */
export function ipv4RouteLines(routes: readonly GuestRoute[]): string[][] {
  const lines: string[][] = routeDevices(routes).map((dev) => ["route", "flush", "dev", dev]);
  for (const r of orderRoutes(routes).filter((x) => x.family !== 6)) lines.push(routeLine(r));
  return lines;
}

/** The IPv6 routes, added in a batch of their own (`-6`) that reads them back; none asked: nothing run. */
export async function addIpv6Routes(routes: readonly GuestRoute[], devices: readonly string[]): Promise<GuestRoute[]> {
  const v6routes = orderRoutes(routes).filter((x) => x.family === 6);
  if (v6routes.length === 0) return [];
  const shown = await ipBatch(6, [...v6routes.map(routeLine), ["route", "show"]]);
  return toGuestRoutes(shown.at(-1) as IpRoute[], 6, devices);
}

/** A `route show` answer (IPv4) as the agent API's routes on these devices. */
export function ipv4RoutesShown(shown: unknown, devices: readonly string[]): GuestRoute[] {
  return toGuestRoutes((shown ?? []) as IpRoute[], 4, devices);
}

/**
 * Per family, flush (IPv4), add and read back in one `ip -batch`: one process for IPv4, and one
 * more only when IPv6 routes were asked for (the IPv6 routes the kernel made itself are then not
 * read back).
 */
export async function replaceRoutes(routes: readonly GuestRoute[]): Promise<GuestRoute[]> {
  const devices = routeDevices(routes);
  const out = ipv4RoutesShown((await ipBatch(4, [...ipv4RouteLines(routes), ["route", "show"]])).at(-1), devices);
  out.push(...(await addIpv6Routes(routes, devices)));
  return out;
}

export async function readRoutes(devices: readonly string[]): Promise<GuestRoute[]> {
  return [...toGuestRoutes(await ipJson<IpRoute>(["-4", "route", "show"]), 4, devices), ...toGuestRoutes(await ipJson<IpRoute>(["-6", "route", "show"]), 6, devices)];
}

function toGuestRoutes(shown: readonly IpRoute[], family: 4 | 6, devices: readonly string[]): GuestRoute[] {
  const out: GuestRoute[] = [];
  for (const r of shown) {
    if (r.dev === undefined || !devices.includes(r.dev)) continue;
    if (family === 6 && r.dst.startsWith("fe80:")) continue;
    const scope = Number(Object.entries(scopeNames).find(([, n]) => n === r.scope)?.[0] ?? 0);
    out.push({ dest: r.dst === "default" ? "" : r.dst, gateway: r.gateway ?? "", device: r.dev, source: r.prefsrc ?? "", scope, family });
  }
  return out;
}
