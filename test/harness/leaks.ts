// Leak checks for a harness: a snapshot of host-wide places taken before containerd starts, and a
// comparison after stop(). Host-wide places (shim sockets, cgroups, /var/run/netns, CNI results)
// are compared against the snapshot; private ones (processes, mounts, dirs) by the harness's dir.
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { KataError } from "../../src/util/errors.js";
import { pathExists } from "../../src/util/fs.js";
import { mountsUnder } from "./mounts.js";
import { processesMentioning, processesRootedUnder } from "./processes.js";
import { listShimSockets } from "./shim-sockets.js";

const NETNS_DIR = "/var/run/netns";
const CNI_RESULTS_DIR = "/var/lib/cni/results";

/** Where QEMU's virtiofsd leaves a pid file per socket path (src/sandbox/virtiofsd.ts). */
const VIRTIOFSD_PID_DIR = "/run/virtiofsd";

/** virtiofsd pid files of sockets under `baseDir` (named after the socket path, "/" -> "."). */
export async function virtiofsdPidFiles(baseDir: string): Promise<string[]> {
  const prefix = `${baseDir.replaceAll("/", ".")}.`;
  return (await list(VIRTIOFSD_PID_DIR)).filter((f) => f.startsWith(prefix)).map((f) => join(VIRTIOFSD_PID_DIR, f));
}

export interface HostSnapshot {
  shimSockets: Set<string>;
  cgroups: Set<string>;
  netns: Set<string>;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * Container cgroups as paths: the k8s.io parent of each hierarchy (cgroup v1 <controller>/k8s.io,
 * v2 k8s.io) and the per-container cgroups below it, where runc puts containers by default.
 */
async function k8sCgroups(): Promise<string[]> {
  const out: string[] = [];
  const root = "/sys/fs/cgroup";
  for (const parent of [join(root, "k8s.io"), ...(await subdirs(root)).map((c) => join(root, c, "k8s.io"))]) {
    const kids = await subdirs(parent);
    if (kids.length === 0 && !(await pathExists(parent))) continue;
    out.push(parent, ...kids.map((k) => join(parent, k)));
  }
  return out;
}

/** Container cgroups created since the snapshot. */
export async function newCgroups(before: HostSnapshot): Promise<string[]> {
  return (await k8sCgroups()).filter((c) => !before.cgroups.has(c));
}

/**
 * CNI's cached results (<network>-<sandbox id>-<ifname>) that belong to a harness: by its network
 * name, or (the CRI plugin's built-in cni-loopback network) by the pod netns path recorded in the
 * file, which lies under the harness's state dir.
 */
export async function ownCniResults(networkName: string, baseDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of await list(CNI_RESULTS_DIR)) {
    const path = join(CNI_RESULTS_DIR, f);
    if (f.startsWith(`${networkName}-`)) {
      out.push(path);
      continue;
    }
    const text = await readFile(path, "utf8").catch(() => "");
    if (text.includes(`"${baseDir}/`)) out.push(path);
  }
  return out;
}

export async function snapshotHost(): Promise<HostSnapshot> {
  return {
    shimSockets: new Set(await listShimSockets()),
    cgroups: new Set(await k8sCgroups()),
    netns: new Set(await list(NETNS_DIR)),
  };
}

export interface LeakScope {
  baseDir: string;
  cniNetworkName: string;
  before: HostSnapshot;
  /** Containers that stop() still found (and tore down): their cgroups must be gone. */
  seenContainerIds?: readonly string[];
  /**
   * This instance's shim sockets (own-shim-sockets.ts) that stop() found dead in
   * /run/containerd/s once containerd was stopped, before it killed anything: left by a shim.
   */
  leftShimSockets?: readonly string[];
}

/** Human-readable leaks: empty when the harness left nothing behind. */
export async function findLeaks(scope: LeakScope): Promise<string[]> {
  const leaks: string[] = [];
  for (const p of await processesMentioning(scope.baseDir)) leaks.push(`process ${p.pid}: ${p.cmdline.join(" ")}`);
  for (const p of await processesRootedUnder(scope.baseDir)) leaks.push(`container process ${p.pid}: ${p.cmdline.join(" ")}`);
  for (const m of await mountsUnder([scope.baseDir])) leaks.push(`mount ${m}`);
  if (await pathExists(scope.baseDir)) leaks.push(`directory ${scope.baseDir}`);
  for (const f of await virtiofsdPidFiles(scope.baseDir)) leaks.push(`virtiofsd pid file ${f}`);
  for (const s of scope.leftShimSockets ?? []) leaks.push(`shim socket ${s} (nothing served it once the pods were removed)`);
  // Only cgroups of this harness's containers: new ones of concurrent tests are not ours.
  const ids = new Set(scope.seenContainerIds ?? []);
  for (const c of await newCgroups(scope.before)) if (ids.has(basename(c))) leaks.push(`cgroup ${c}`);
  // The harness's own netns, and any new CRI-style one (cni-*: the pod netns, had it not been kept
  // under the state dir); other new ones belong to concurrent tests.
  for (const n of await list(NETNS_DIR)) {
    if (n === scope.cniNetworkName || (n.startsWith("cni-") && !scope.before.netns.has(n))) leaks.push(`netns ${join(NETNS_DIR, n)}`);
  }
  for (const f of await ownCniResults(scope.cniNetworkName, scope.baseDir)) leaks.push(`CNI result ${f}`);
  return leaks;
}

export async function assertNoLeaks(scope: LeakScope): Promise<void> {
  const leaks = await findLeaks(scope);
  if (leaks.length > 0) throw new KataError("FAILED_PRECONDITION", `test harness leaked:\n  ${leaks.join("\n  ")}`);
}
