// Adoption's guest network call (agent UpdateNetwork) in pooled VMs, with and without the warm
// `ip -batch -` co-process that PrepareSandbox starts (src/agent/network/ip-coprocess.ts). Each
// round boots two VMs of the same image exactly as the pool does (PooledVm.boot: PrepareSandbox
// included, at normal priority here), at once, so both share the host's load; the `cold` one with
// kata_ts.warm_ip=off (no co-process: its call spawns `ip`), the `warm` one as the pool boots it
// (its call writes to the co-process). The calls run one after the other, alternating which first. The
// measured call is what adoption sends (the pool MAC changed to the pod's, addresses, routes, the
// port-forward link). Figures: QEMU CPU (utime+stime, all threads) and wall over the call, medians.
// Usage: node dist/bench/adopt-network.js [--runs N] [--json]
import { loadavg, tmpdir } from "node:os";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseConfig, selectedVmmConfig } from "../src/config/index.js";
import { vmLayout } from "../src/hypervisor/qemu/layout.js";
import { PooledVm } from "../src/pool/pooled-vm.js";
import { podAssets, poolShape } from "../src/pool/shape.js";
import { TtrpcClient } from "../src/protocol/ttrpc/index.js";
import { AgentClient } from "../src/sandbox/agent-client.js";
import { guestNetworkView } from "../src/sandbox/network/pod-network.js";
import { SHARED_FS_TAG, WARM_IP_OFF } from "../src/protocol/contract/guest.js";
import { randomBytes } from "node:crypto";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";
import { describeSpread, figuresLine, median } from "./lib/figures.js";

const USAGE = `usage: node dist/bench/adopt-network.js [--runs N] [--json]

Per round, two VMs booted as the pool boots them, at once: adoption's UpdateNetwork timed in each,
one through a fresh \`ip\` (cold), one through the warm co-process (warm); QEMU CPU ms and wall ms.

  --runs N   rounds (default 3)
  --pair     instead: adoption's CreateSandbox and UpdateNetwork (both VMs warm), one after the
             other (cold = seq) or sent at once (warm = par)
  --json     end with one line {"figures": {...}}
  --help     this text`;

const argv = parseBenchArgs(USAGE, { options: { runs: { type: "string", default: "3" }, pair: { type: "boolean", default: false }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const N = checkOptions(USAGE, () => intOption("runs", argv.runs, 1));

const TICK_MS = 10;
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) * TICK_MS;
}

const config = parseConfig("", "built-in defaults");
const vmm = selectedVmmConfig(config);
const shape = poolShape(config, await podAssets(config), { vcpus: vmm.default_vcpus, memoryMiB: vmm.default_memory }, "");
// The cold VM: the same image, its PrepareSandbox told to start no co-process.
const coldShape = argv.pair ? shape : { ...shape, kernelCmdline: [...shape.kernelCmdline, WARM_IP_OFF] };
const vmsDir = await mkdtemp(join(tmpdir(), "kts-bench-adoptnet-"));
const POD_MAC = "02:42:0a:58:00:05";

type Call = "network" | "seq" | "par";

async function measure(vm: PooledVm, call: Call): Promise<{ cpu: number; wall: number }> {
  const conn = await TtrpcClient.connect(vmLayout(vm.paths.vmStateDir).agentSocketPath, { timeoutMs: 10_000 });
  try {
    const agent = new AgentClient(conn);
    const net = guestNetworkView(
      [{ name: "eth0", mac: POD_MAC, currentMac: vm.handle.mac, mtu: 1500, addresses: [{ family: 4, address: "10.88.0.5", prefixLength: 16 }] }],
      [
        { dest: "", gateway: "10.88.0.1", device: "eth0", source: "", scope: 0, family: 4 },
        { dest: "10.88.0.0/16", gateway: "", device: "eth0", source: "10.88.0.5", scope: 253, family: 4 },
      ],
    );
    const cpu0 = await cpuMs(vm.handle.qemuPid);
    const t0 = performance.now();
    const create = (): Promise<void> => agent.createSandbox({ sandboxId: "bench", hostname: "bench", dns: ["nameserver 10.96.0.10"], sharedFsTag: SHARED_FS_TAG, entropy: new Uint8Array(randomBytes(64)), sysctls: {} });
    const update = (): ReturnType<AgentClient["updateNetwork"]> => agent.updateNetwork(net.interfaces, net.routes);
    let res: Awaited<ReturnType<typeof update>>;
    if (call === "network") res = await update();
    else if (call === "seq") res = await create().then(update);
    else res = (await Promise.all([create(), update()]))[1];
    const wall = performance.now() - t0;
    const cpu = (await cpuMs(vm.handle.qemuPid)) - cpu0;
    if (res.interfaces[0]?.mac !== POD_MAC) throw new Error(`UpdateNetwork answered ${JSON.stringify(res.interfaces)}`);
    return { cpu, wall };
  } finally {
    conn.close();
  }
}

const out = { warm: { cpu: [] as number[], wall: [] as number[] }, cold: { cpu: [] as number[], wall: [] as number[] } };
const loads: number[] = [];
try {
  for (let r = 0; r < N; r++) {
    const [warmVm, coldVm] = await Promise.all([shape, coldShape].map((s) => PooledVm.boot(s, vmsDir, { bootTimeoutMs: 600_000, warmUpContainers: false })));
    try {
      const order: ["warm" | "cold", PooledVm][] = [["warm", warmVm as PooledVm], ["cold", coldVm as PooledVm]];
      loads.push(loadavg()[0] ?? 0);
      // One after the other (alternating which first), so neither call competes with the other's guest.
      const got: { cpu: number; wall: number }[] = [];
      for (const [v, vm] of r % 2 === 0 ? order : [...order].reverse()) got.push(await measure(vm, !argv.pair ? "network" : v === "warm" ? "par" : "seq"));
      if (r % 2 === 1) got.reverse();
      order.forEach(([v], i) => {
        out[v].cpu.push(got[i]!.cpu);
        out[v].wall.push(got[i]!.wall);
      });
      process.stdout.write(`round ${r + 1}: ${order.map(([v], i) => `${v} ${got[i]!.cpu} ms CPU / ${Math.round(got[i]!.wall)} ms wall`).join(", ")} (load ${loads.at(-1)?.toFixed(1)})\n`);
    } finally {
      await Promise.all([warmVm, coldVm].map((vm) => vm?.destroy()));
    }
  }
} finally {
  await rm(vmsDir, { recursive: true, force: true });
}
for (const v of ["cold", "warm"] as const) process.stdout.write(`${v}: QEMU CPU ${describeSpread(out[v].cpu)} ms; wall ${describeSpread(out[v].wall.map(Math.round))} ms\n`);
if (argv.json) {
  process.stdout.write(`${figuresLine({ update_network_cold_cpu_ms: median(out.cold.cpu), update_network_warm_cpu_ms: median(out.warm.cpu), update_network_cold_wall_ms: median(out.cold.wall), update_network_warm_wall_ms: median(out.warm.wall), load_average: median(loads) })}\n`);
}
