// PrepareSandbox's warm-up (a pooled VM, before any pod): the code adoption runs in the guest,
// run once here on pod-neutral data, so the pod's CreateSandbox and UpdateNetwork find it
// compiled and paged in (under TCG the first run of any code costs several times a later one).
// Nothing here carries or changes anything of a pod: the guest's own random bytes mixed into its
// pool (mixing never lowers entropy), the current hostname written back unchanged, the requests'
// protobuf encoded and decoded in memory, the NICs listed, and a read-only `ip -batch` (`route show`);
// then the warm `ip -batch -` co-process that adoption's UpdateNetwork will write to (network/ip-coprocess.ts).
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { WARM_IP_OFF } from "../protocol/contract/guest.js";
import { CreateSandboxRequestSchema, UpdateNetworkRequestSchema, UpdateNetworkResponseSchema } from "../protocol/gen/katats/agent/v1/agent_pb.js";
import { applySysctls } from "./container/sysctl.js";
import { mixEntropy } from "./entropy.js";
import { configureNetwork } from "./network/network.js";
import { findLinkByMac } from "./network/interface.js";
import { startWarmIp } from "./network/ip-tool.js";

function roundTrip(): void {
  const sandbox = create(CreateSandboxRequestSchema, { sandboxId: "warm-up", hostname: "warm-up", dns: ["nameserver 127.0.0.1"], sharedFsTag: "warm-up", hostTime: timestampNow(), sysctls: { "kernel.warm-up": "0" }, entropy: new Uint8Array(8), mounts: [{ source: "warm-up", target: "/warm-up", fstype: "tmpfs", options: ["ro"] }] });
  fromBinary(CreateSandboxRequestSchema, toBinary(CreateSandboxRequestSchema, sandbox));
  const iface = { name: "eth0", hwAddr: "02:00:00:00:00:01", currentHwAddr: "02:00:00:00:00:02", mtu: 1500, ipAddresses: [{ address: "192.0.2.1", prefixLength: 24 }] };
  const routes = { routes: [{ dest: "192.0.2.0/24", gateway: "192.0.2.254", device: "eth0", source: "192.0.2.1", scope: 253 }] };
  fromBinary(UpdateNetworkRequestSchema, toBinary(UpdateNetworkRequestSchema, create(UpdateNetworkRequestSchema, { interfaces: [iface], routes })));
  fromBinary(UpdateNetworkResponseSchema, toBinary(UpdateNetworkResponseSchema, create(UpdateNetworkResponseSchema, { interfaces: [iface], routes })));
}

/** CreateSandbox's guest code and the NIC lookup, with no process spawned (also the pod path's rehearsal's first step). */
export async function warmAdoptionCode(hostnameFile = "/proc/sys/kernel/hostname"): Promise<void> {
  roundTrip();
  await mixEntropy(new Uint8Array(randomBytes(64)));
  const hostname = (await readFile(hostnameFile, "utf8")).trim();
  if (hostname !== "") await applySysctls({ "kernel.hostname": hostname });
  // The NIC lookup by MAC (sysfs reads), for a MAC no NIC has.
  await findLinkByMac("00:00:00:00:00:00").catch(() => undefined);
}

export async function warmAdoptionPaths(hostnameFile = "/proc/sys/kernel/hostname", cmdlineFile = "/proc/cmdline"): Promise<void> {
  await warmAdoptionCode(hostnameFile);
  await configureNetwork([], []);
  // Adoption's UpdateNetwork writes its lines to this one rather than spawning `ip` (ip-tool.ts).
  const cmdline = await readFile(cmdlineFile, "utf8").catch(() => "");
  if (!cmdline.split(/\s+/).includes(WARM_IP_OFF)) await startWarmIp([["route", "show"]]);
}
