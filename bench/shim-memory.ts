// What one idle shim server costs on the host, without VMs: N production shim servers
// (the bundle, else dist/src/shim/main.js, `serve`, with its pod factory loaded as for a real pod) spawned with
// different V8 flags and malloc settings: their PSS per server after a settling time, then one server's CPU per ttRPC
// call (Connect + State), its PSS right after those calls (a shim busy with Stats polls, liveness
// checks, execs) and once idle again. A bare Node process listening on a socket is the floor. This is the
// A/B behind start.ts's serverNodeFlags (docs/shim.md); bench/density.ts measures whole pods.
// PSS is not load-sensitive; CPU per call is, a little (cache contention): compare rows of one run.
// Prints figures; never asserts.
// Usage: see USAGE below (`node dist/bench/shim-memory.js --help`).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Task } from "../src/protocol/gen/containerd/task/v2/shim_pb.js";
import { createClient, TtrpcClient } from "../src/protocol/ttrpc/index.js";
import { shimEntryIn } from "../src/shim/bundle-path.js";
import { serverMallocEnv, serverNodeFlags } from "../src/shim/start.js";
import { checkOptions, intOption, numberOption, parseBenchArgs } from "./lib/args.js";
import { pssKiB } from "./lib/pod-pss.js";

const USAGE = `usage: node dist/bench/shim-memory.js [--servers N] [--settle-s S] [--rpcs N] [--recover-s S] [--json]

What one idle shim server costs on the host, without VMs: for each V8 flag and malloc variant (and a bare Node
process as the floor), N shim servers are spawned; prints PSS per server after the settling time,
one server's CPU per ttRPC call, its PSS right after the calls and once idle again.

  --servers N     shim servers per variant (default 4)
  --settle-s S    seconds after spawning before the idle PSS is read (default 10)
  --rpcs N        ttRPC calls (Connect + State) sent to one server, at least 2 (default 20000)
  --recover-s S   seconds after the calls before the "idle again" PSS is read (default 60)
  --json          end with one line {"figures": {...}}
  --help          this text`;

// The script production launchers run: the bundle once built (src/shim/bundle-path.ts).
const shimMain = shimEntryIn(join(import.meta.dirname, "..", "src", "shim"));
const bareServer = "require('node:net').createServer().listen(process.argv.at(-2))";

interface Variant {
  name: string;
  argv: (socket: string) => string[];
  /** Added to the server's environment (start.ts serverMallocEnv for the production default). */
  env?: Readonly<Record<string, string>>;
}

const shimArgv = (flags: readonly string[]) => (socket: string) => [...flags, shimMain, "-namespace", "bench", "-address", join(socket, "..", "none"), "-id", "bench", "-socket", socket, "serve"];
const variants: Variant[] = [
  { name: "bare_node", argv: (socket) => ["-e", bareServer, socket, "serve"] },
  { name: "no_flags", argv: shimArgv([]) },
  { name: "v8_flags_only", argv: shimArgv(serverNodeFlags) },
  { name: "default", argv: shimArgv(serverNodeFlags), env: serverMallocEnv },
  { name: "lite_mode", argv: shimArgv([...serverNodeFlags, "--lite-mode"]), env: serverMallocEnv },
];

async function waitListening(socket: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}) before listening on ${socket}`);
    try {
      (await TtrpcClient.connect(`unix://${socket}`, { timeoutMs: 1000 })).close();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`server did not listen on ${socket} within 30 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 100 Hz ticks
}

/** Server CPU in µs per call for `rpcs` calls (Connect and a NOT_FOUND State, alternating). */
async function cpuPerRpcUs(socket: string, pid: number, rpcs: number): Promise<number> {
  const client = await TtrpcClient.connect(`unix://${socket}`, { timeoutMs: 5000 });
  try {
    const task = createClient(client, Task);
    const before = await cpuMs(pid);
    for (let i = 0; i < rpcs / 2; i++) {
      await task.connect({ id: "bench" });
      await task.state({ id: "bench" }).catch(() => undefined);
    }
    return ((await cpuMs(pid)) - before) * 1000 / rpcs;
  } finally {
    client.close();
  }
}

interface Measured {
  idlePssMiB: number;
  /** Right after the calls: the peak. */
  busyPssMiB: number;
  /** `recoverS` later, once V8's memory reducer has run. */
  recoveredPssMiB: number;
  cpuUs: number;
}

/**
 * Idle PSS per server (average of all), then the first one's CPU per call for `rpcs` calls and its
 * PSS right after them and `recoverS` later.
 */
async function measure(v: Variant, servers: number, settleS: number, rpcs: number, recoverS: number): Promise<Measured> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-shim-memory-"));
  const children: ChildProcess[] = [];
  const sleepS = (s: number) => new Promise((r) => setTimeout(r, s * 1000));
  try {
    for (let i = 0; i < servers; i++) {
      const socket = join(dir, `s${i}.sock`);
      const child = spawn(process.execPath, v.argv(socket), { cwd: dir, stdio: ["ignore", "ignore", "ignore"], env: { ...process.env, ...v.env } });
      children.push(child);
      await waitListening(socket, child);
    }
    await sleepS(settleS);
    let idle = 0;
    for (const c of children) idle += await pssKiB(c.pid as number);
    const first = (children[0] as ChildProcess).pid as number;
    const idlePssMiB = idle / 1024 / servers;
    if (v.name === "bare_node") return { idlePssMiB, busyPssMiB: 0, recoveredPssMiB: 0, cpuUs: 0 };
    const cpuUs = await cpuPerRpcUs(join(dir, "s0.sock"), first, rpcs);
    const busyPssMiB = (await pssKiB(first)) / 1024;
    await sleepS(recoverS);
    return { idlePssMiB, busyPssMiB, recoveredPssMiB: (await pssKiB(first)) / 1024, cpuUs };
  } finally {
    for (const c of children) c.kill("SIGKILL");
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once("exit", r)))));
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      servers: { type: "string", default: "4" },
      "settle-s": { type: "string", default: "10" },
      rpcs: { type: "string", default: "20000" },
      "recover-s": { type: "string", default: "60" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const { servers, settleS, rpcs, recoverS } = checkOptions(USAGE, () => ({
    servers: intOption("servers", values.servers, 1),
    settleS: numberOption("settle-s", values["settle-s"], 0),
    rpcs: intOption("rpcs", values.rpcs, 2),
    recoverS: numberOption("recover-s", values["recover-s"], 0),
  }));
  const figures: Record<string, number> = { servers };
  for (const v of variants) {
    const m = await measure(v, servers, settleS, rpcs, recoverS);
    const busy = `; after ${rpcs} RPCs ${m.busyPssMiB.toFixed(1)} MiB, ${recoverS} s later ${m.recoveredPssMiB.toFixed(1)} MiB; server CPU per RPC ${m.cpuUs.toFixed(0)} us`;
    console.log(`${v.name}: idle PSS per server ${m.idlePssMiB.toFixed(1)} MiB${v.name === "bare_node" ? "" : busy}`);
    figures[`${v.name}_idle_pss_mib`] = Number(m.idlePssMiB.toFixed(1));
    if (v.name !== "bare_node") {
      figures[`${v.name}_busy_pss_mib`] = Number(m.busyPssMiB.toFixed(1));
      figures[`${v.name}_recovered_pss_mib`] = Number(m.recoveredPssMiB.toFixed(1));
      figures[`${v.name}_cpu_per_rpc_us`] = Number(m.cpuUs.toFixed(0));
    }
  }
  console.log(`(server flags by default: ${serverNodeFlags.join(" ")}; environment ${Object.entries(serverMallocEnv).map(([k, v]) => `${k}=${v}`).join(" ")})`);
  if (values.json) console.log(JSON.stringify({ figures }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
