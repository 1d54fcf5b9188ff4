// What the sandbox's OCI spec says about the pod's network, the way containerd's CRI plugin
// writes it: the pod netns as linux.namespaces[type=network].path (CNI has already set it up), no
// network namespace at all for a hostNetwork pod, and the pod's resolv.conf as a bind mount on
// /etc/resolv.conf ("for katacontainers to setup the DNS of pod VM properly", containerd 1.5+).
import { readFile } from "node:fs/promises";
import { KataError } from "../../util/errors.js";

interface NamespaceView {
  type: string;
  path?: string;
}

interface MountView {
  destination: string;
  source?: string;
}

/** Any OCI spec object (the shim's is untyped JSON): only the fields read here are looked at. */
export type SpecNetworkView = object;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

function namespaces(spec: SpecNetworkView): NamespaceView[] {
  const linux = (spec as { linux?: unknown }).linux;
  const list = isRecord(linux) ? linux.namespaces : undefined;
  return Array.isArray(list) ? list.filter((n): n is NamespaceView => isRecord(n) && typeof n.type === "string") : [];
}

function mounts(spec: SpecNetworkView): MountView[] {
  const list = (spec as { mounts?: unknown }).mounts;
  return Array.isArray(list) ? list.filter((m): m is MountView => isRecord(m) && typeof m.destination === "string") : [];
}

export type PodNetworkMode =
  /** Mirror the interfaces CNI made in this netns into the VM. */
  | { kind: "netns"; path: string }
  /** A fresh netns (no path, e.g. `ctr run`): the VM gets no NIC, like an empty netns. */
  | { kind: "none" }
  /** No network namespace: the pod would share the host's. */
  | { kind: "host" };

export function podNetworkMode(spec: SpecNetworkView): PodNetworkMode {
  const ns = namespaces(spec).find((n) => n.type === "network");
  if (ns === undefined) return { kind: "host" };
  if (ns.path === undefined || ns.path === "") return { kind: "none" };
  return { kind: "netns", path: ns.path };
}

export const HOST_NETWORK_REFUSED =
  "kata-ts cannot run a hostNetwork pod: the pod runs in its own VM, which has its own network stack and cannot share the " +
  "node's network namespace. Run this pod with a runtime that shares the host kernel (e.g. runc), or drop hostNetwork: true";

/** Throws FAILED_PRECONDITION for a spec without a network namespace (hostNetwork). */
export function requireOwnNetwork(spec: SpecNetworkView): Exclude<PodNetworkMode, { kind: "host" }> {
  const mode = podNetworkMode(spec);
  if (mode.kind === "host") throw new KataError("FAILED_PRECONDITION", HOST_NETWORK_REFUSED);
  return mode;
}

/** Lines of a resolv.conf worth handing to the guest (no comments, no blanks). */
export function resolvConfLines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith(";"));
}

/** The pod's DNS settings from the resolv.conf the runtime bind-mounts into the sandbox; [] if none. */
export async function podDns(spec: SpecNetworkView): Promise<string[]> {
  const m = mounts(spec).find((x) => x.destination === "/etc/resolv.conf" && typeof x.source === "string");
  if (m?.source === undefined) return [];
  const text = await readFile(m.source, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return "";
    throw new KataError("INTERNAL", `cannot read the pod's resolv.conf ${m.source}`, { cause: err });
  });
  return resolvConfLines(text);
}
