// UpdateNetwork in the guest: every NIC takes its veth's name, MAC, MTU and addresses, then the
// routes go in, as UpdateInterface per NIC followed by UpdateRoutes would do, but in one `ip -batch`
// process (plus one for IPv6 routes, if any): each process spawned in the guest costs ~100+ ms
// under TCG. iproute2 stops at the first failing line and exits non-zero, which fails the call.
import type { GuestInterface, GuestRoute } from "../../protocol/contract/network.js";
import { findInterface, interfaceLines, interfaceShown } from "./interface.js";
import { ipBatch } from "./ip-tool.js";
import { addIpv6Routes, ipv4RouteLines, ipv4RoutesShown, routeDevices } from "./routes.js";

export interface GuestNetwork {
  interfaces: GuestInterface[];
  routes: GuestRoute[];
}

/** The batch's lines: interfaces (each read back), then IPv4 routes (read back last). */
export function networkLines(interfaces: readonly GuestInterface[], currentNames: readonly string[], routes: readonly GuestRoute[]): string[][] {
  const lines: string[][] = [];
  interfaces.forEach((want, i) => lines.push(...interfaceLines(want, currentNames[i] as string)));
  for (const want of interfaces) lines.push(["addr", "show", "dev", want.name]);
  lines.push(...ipv4RouteLines(routes), ["route", "show"]);
  return lines;
}

export async function configureNetwork(interfaces: readonly GuestInterface[], routes: readonly GuestRoute[]): Promise<GuestNetwork> {
  // Every NIC is found (by MAC, in sysfs) before anything changes.
  const names: string[] = [];
  for (const want of interfaces) names.push(await findInterface(want));
  const shown = await ipBatch(undefined, networkLines(interfaces, names, routes));
  const devices = routeDevices(routes);
  const out: GuestNetwork = {
    interfaces: interfaces.map((want, i) => interfaceShown(shown[i], want.name)),
    // iproute2 prints nothing, not "[]", for an empty route list.
    routes: shown.length > interfaces.length ? ipv4RoutesShown(shown.at(-1), devices) : [],
  };
  out.routes.push(...(await addIpv6Routes(routes, devices)));
  return out;
}
