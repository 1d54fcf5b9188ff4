// What this host can do for kata-ts. Each probe looks at the real thing (runs the binary, opens
// the device, builds a throwaway tc redirect) and says whether kata-ts needs it.
import { access, constants, readdir } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { run, tryRun } from "../util/exec.js";
import { qemuBinary } from "../hypervisor/qemu/probe.js";
import { vmmCapabilities, type VmmPaths } from "./vmm-capabilities.js";
import { defaultConfig, loadConfig } from "../config/index.js";
import { poolPaths } from "../pool/layout.js";
import { poolCall } from "../pool/protocol.js";
import { configuredPoolReservation } from "../pool/reservation.js";

/** ok: works; missing: a must-have is absent; absent: an optional thing is not there; unusable: there
 * but a real probe showed it does not work; unverified: there, not probed. */
export type CapabilityStatus = "ok" | "missing" | "unverified" | "absent" | "unusable";

export interface Capability {
  name: string;
  status: CapabilityStatus;
  detail: string;
  /** A must-have: `kata-ts check` fails when it is missing. */
  required: boolean;
}

export const virtiofsdBinary = "/usr/lib/qemu/virtiofsd";
export const cniPluginDir = "/usr/lib/cni";
const requiredCniPlugins = ["bridge", "host-local", "loopback"];

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  return access(path, mode).then(() => true, () => false);
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] ?? "";
}

async function versionOf(name: string, file: string, args: string[], required: boolean, fix: string): Promise<Capability> {
  const out = await tryRun(file, args, { timeoutMs: 10_000 });
  if (out === undefined) return { name, status: "missing", detail: `${file} not found or not runnable (${fix})`, required };
  return { name, status: "ok", detail: firstLine(out.stdout || out.stderr), required };
}

/**
 * KVM is usable only if a real guest boots under it: the boot probe (src/hypervisor/accel.ts) runs
 * once per host kernel + QEMU version and is cached; an openable /dev/kvm alone proves nothing.
 */
async function kvmPresence(): Promise<Capability> {
  const name = "kvm";
  const { kvmDeviceOpenable, readKvmProbe, probeKvm } = await import("../hypervisor/accel.js");
  if (!(await kvmDeviceOpenable())) {
    return { name, status: "absent", detail: "/dev/kvm absent: VMs run under TCG (software emulation), slower but complete", required: false };
  }
  let result = await readKvmProbe().catch(() => undefined);
  if (result === undefined) {
    const { loadGuestAssets } = await import("../guest/assets.js");
    const assets = await loadGuestAssets().catch(() => undefined);
    if (assets === undefined) {
      return { name, status: "unverified", detail: "/dev/kvm present; the boot probe needs guest assets (kata-ts build-assets), until then VMs use TCG", required: false };
    }
    const { mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { probeKvmBoot } = await import("../sandbox/agent-boot.js");
    const { QemuHypervisor } = await import("../hypervisor/qemu/index.js");
    const dir = await mkdtemp(join(tmpdir(), "kata-ts-kvm-probe-"));
    try {
      const hv = await QemuHypervisor.open();
      const config = {
        id: "kvm-probe", stateDir: join(dir, "vm"), vcpus: 1, memoryMiB: 256, kernelPath: assets.kernelPath,
        ...(assets.initrdPath === undefined ? {} : { initrdPath: assets.initrdPath }),
        rootfsPath: assets.rootfsPath, rootfsDevice: assets.rootfsDevice, kernelCmdline: assets.kernelCmdline, accel: "kvm" as const,
      };
      result = await probeKvm(() => probeKvmBoot(config, hv));
    } catch (err) {
      return { name, status: "unverified", detail: `/dev/kvm present; the boot probe could not run: ${(err as Error).message}`, required: false };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return result.usable
    ? { name, status: "ok", detail: `usable: ${result.detail} (probed ${result.probedAt})`, required: false }
    : { name, status: "unusable", detail: `/dev/kvm present but unusable, VMs use TCG: ${result.detail} (probed ${result.probedAt})`, required: false };
}

async function deviceNode(name: string, path: string, required: boolean, absentDetail: string): Promise<Capability> {
  const ok = await exists(path, constants.R_OK | constants.W_OK);
  return { name, status: ok ? "ok" : required ? "missing" : "absent", detail: ok ? `${path} present` : absentDetail, required };
}

async function cgroupVersion(): Promise<Capability> {
  const name = "cgroup";
  if (await exists("/sys/fs/cgroup/cgroup.controllers")) return { name, status: "ok", detail: "v2 (unified)", required: true };
  if (await exists("/sys/fs/cgroup/memory")) {
    const hybrid = await exists("/sys/fs/cgroup/unified/cgroup.controllers");
    return { name, status: "ok", detail: hybrid ? "v1 (hybrid, cgroup2 at /sys/fs/cgroup/unified)" : "v1", required: true };
  }
  return { name, status: "missing", detail: "no cgroup hierarchy mounted at /sys/fs/cgroup", required: true };
}

async function cniPlugins(): Promise<Capability> {
  const names = await readdir(cniPluginDir).catch(() => [] as string[]);
  const missing = requiredCniPlugins.filter((p) => !names.includes(p));
  return {
    name: "cni-plugins",
    status: missing.length === 0 ? "ok" : "missing",
    detail: missing.length === 0 ? `${cniPluginDir}: ${names.length} plugins` : `${cniPluginDir} lacks ${missing.join(", ")} (apt-get install containernetworking-plugins)`,
    required: true,
  };
}

/** Builds a veth pair in a throwaway netns and redirects one's ingress to the other with tc mirred. */
async function tcMirred(): Promise<Capability> {
  const ns = `kata-ts-check-${randomBytes(4).toString("hex")}`;
  const name = "tc-mirred";
  try {
    await run("ip", ["netns", "add", ns]);
    const inNs = (...args: string[]) => run("ip", ["netns", "exec", ns, ...args], { timeoutMs: 10_000 });
    await inNs("ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0");
    await inNs("tc", "qdisc", "add", "dev", "a0", "ingress");
    await inNs("tc", "filter", "add", "dev", "a0", "parent", "ffff:", "protocol", "all", "u32", "match", "u8", "0", "0",
      "action", "mirred", "egress", "redirect", "dev", "b0");
    return { name, status: "ok", detail: "ingress qdisc + mirred egress redirect work", required: true };
  } catch (err) {
    return { name, status: "missing", detail: `tc mirred redirect failed: ${(err as Error).message}`, required: true };
  } finally {
    await tryRun("ip", ["netns", "delete", ns]);
  }
}

/** What port-forward sets up in a pod netns (src/sandbox/network/port-forward.ts): loopback DNAT and a raw-table drop. */
async function portForwardNat(): Promise<Capability> {
  const ns = `kata-ts-check-${randomBytes(4).toString("hex")}`;
  const name = "port-forward-nat";
  try {
    await run("ip", ["netns", "add", ns]);
    const iptables = (...args: string[]) => run("ip", ["netns", "exec", ns, "iptables", "-w", "10", ...args], { timeoutMs: 10_000 });
    await iptables("-t", "nat", "-A", "OUTPUT", "-d", "127.0.0.1/32", "-o", "lo", "-p", "tcp", "-j", "DNAT", "--to-destination", "169.254.255.2");
    await iptables("-t", "raw", "-A", "PREROUTING", "-s", "169.254.255.0/30", "-j", "DROP");
    await iptables("-t", "filter", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
    return { name, status: "ok", detail: "iptables nat, raw and conntrack work in a netns", required: true };
  } catch (err) {
    return { name, status: "missing", detail: `iptables in a netns failed (apt-get install iptables; kernel netfilter nat): ${(err as Error).message}`, required: true };
  } finally {
    await tryRun("ip", ["netns", "delete", ns]);
  }
}

/** The VM pool: configured or not, running or not, and how much memory it holds. */
async function vmPool(): Promise<Capability> {
  const name = "vm-pool";
  const { config, source } = await loadConfig().catch(() => ({ config: defaultConfig(), source: "built-in defaults" }));
  const f = config.factory;
  if (!f.enable_pool) return { name, status: "absent", detail: `off ([factory] enable_pool = false in ${source}): every pod boots its VM`, required: false };
  if (config.runtime.hypervisor !== "qemu") {
    return { name, status: "unusable", detail: `enabled in ${source} but [runtime] hypervisor = ${config.runtime.hypervisor}: the pool keeps QEMU VMs only, pods boot their VMs`, required: false };
  }
  // PSS, node-level, in the pool's own cgroups: kubelet's systemReserved, not PodOverhead (docs/pool.md "Memory cost").
  const cost = configuredPoolReservation(f).text;
  const res = await poolCall(poolPaths().socket, { op: "status" }, 2000).catch(() => undefined);
  if (res?.ok !== true || res.status === undefined) {
    return { name, status: "ok", detail: `on (${source}), not running yet: the first pod's shim starts it; then ${cost}`, required: false };
  }
  const ready = res.status.shapes.reduce((n, s) => n + s.ready, 0);
  const mib = Math.round(res.status.shapes.reduce((n, s) => n + s.rssKiB, 0) / 1024);
  return { name, status: "ok", detail: `pid ${res.status.pid}: ${ready} ready VM(s) in ${res.status.shapes.length} shape(s) holding ${mib} MiB resident now; ${cost}`, required: false };
}

/** Every capability; `vmms` are the configured Cloud Hypervisor / Firecracker binaries. */
export async function probeHost(vmms: VmmPaths = {}): Promise<Capability[]> {
  const caps = await Promise.all([
    versionOf("qemu", qemuBinary, ["--version"], true, "apt-get install qemu-system-x86"),
    versionOf("virtiofsd", virtiofsdBinary, ["--version"], true, "apt-get install qemu-system-x86"),
    kvmPresence(),
    deviceNode("vhost-vsock", "/dev/vhost-vsock", false, "absent: the agent channel uses virtio-serial"),
    deviceNode("tun", "/dev/net/tun", true, "/dev/net/tun missing: modprobe tun"),
    tcMirred(),
    portForwardNat(),
    cgroupVersion(),
    versionOf("containerd", "containerd", ["--version"], true, "apt-get install containerd"),
    versionOf("crun", "crun", ["--version"], true, "apt-get install crun"),
    versionOf("runc", "runc", ["--version"], false, "apt-get install runc"),
    cniPlugins(),
    vmPool(),
  ]);
  // Cloud Hypervisor and Firecracker run only under KVM: their verdict needs the KVM answer first.
  caps.push(...(await vmmCapabilities(caps.find((c) => c.name === "kvm"), vmms)));
  return caps;
}

export function missingRequired(caps: readonly Capability[]): Capability[] {
  return caps.filter((c) => c.required && c.status === "missing");
}
