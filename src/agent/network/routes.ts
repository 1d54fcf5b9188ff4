// UpdateRoutes in the guest: the named devices' routes become exactly the given ones. IPv4 routes
// on those devices are flushed first (including the kernel's own subnet routes, which the host's
// list carries too); then link-scope routes go in before the routes whose gateways they reach.
import { KataError } from "../../util/errors.js";
import { ip, ipJson } from "./ip-tool.js";
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
  if (r.device === "") throw new KataError("INVALID_ARGUMENT", `route to ${r.dest || "default"} names no device`);
  const args = [r.family === 6 ? "-6" : "-4", "route", "replace", r.dest === "" ? "default" : r.dest];
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

export async function replaceRoutes(routes: readonly GuestRoute[]): Promise<GuestRoute[]> {
  const devices = [...new Set(routes.map((r) => r.device))];
  for (const dev of devices) {
    if (dev === "") continue;
    await ip(["-4", "route", "flush", "dev", dev]);
  }
  for (const r of orderRoutes(routes)) await ip(routeArgs(r));
  return readRoutes(devices);
}

export async function readRoutes(devices: readonly string[]): Promise<GuestRoute[]> {
  const out: GuestRoute[] = [];
  for (const family of [4, 6] as const) {
    for (const r of await ipJson<IpRoute>([`-${family}`, "route", "show"])) {
      if (r.dev === undefined || !devices.includes(r.dev)) continue;
      if (family === 6 && r.dst.startsWith("fe80:")) continue;
      const scope = Number(Object.entries(scopeNames).find(([, n]) => n === r.scope)?.[0] ?? 0);
      out.push({ dest: r.dst === "default" ? "" : r.dst, gateway: r.gateway ?? "", device: r.dev, source: r.prefsrc ?? "", scope, family });
    }
  }
  return out;
}
