// The VM pool's own memory (issue 14): the pool daemon (`kata-ts pool serve`), its warm shim server
// and its ready VM, as a node holds them before any pod takes them. Starts --per daemons of every
// variant at once (in turns: A1 B1 A2 B2 ...), each with a private state dir (so a private pool),
// waits until each holds its ready VM and warm shim server, lets them settle, then samples every
// process's PSS and private anonymous memory --samples times, --interval-s apart; stops them all
// and checks that nothing of them is left. Variants differ in the daemon's node flags and
// environment; "default" runs the daemon exactly as a shim starts it (src/pool/owner.ts).
// Prints figures, asserts nothing. Usage: node dist/bench/pool-memory.js --help
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { poolPaths, type PoolPaths } from "../src/pool/layout.js";
import { poolDaemonSpawn } from "../src/pool/owner.js";
import { poolCall } from "../src/pool/protocol.js";
import { isShimServerCmdline } from "../src/shim/bundle-path.js";
import { checkOptions, intOption, numberOption, parseBenchArgs, UsageError } from "./lib/args.js";
import { figuresLine, median } from "./lib/figures.js";

const USAGE = `usage: node dist/bench/pool-memory.js [--variant SPEC ...] [options]   (as root)

Per variant (medians over its daemons and samples): PSS and private anonymous memory of the pool
daemon, its warm shim server, its ready VM's QEMU and virtiofsd, once each pool is full and settled.

  --variant SPEC   NAME:KEY=VALUE,...  keys: flag=NODE_FLAG (the daemon's node flags; repeatable),
                   env=NAME=VALUE (the daemon's environment; repeatable), bare=1 (no flags or
                   environment of the production start: what the daemon ran with before),
                   pool=N (pool_size, default 1), warm=N (warm_shims, default 1),
                   cli=PATH (another build's bin/kata-ts.js, e.g. the base of an A/B).
                   "default:" (the default): the daemon as src/pool/owner.ts starts it.
                   e.g. --variant bare:bare=1 --variant default:
  --per N          daemons per variant (default 2)
  --settle-s S     seconds after every pool is full before the first sample (default 20)
  --samples N      samples (default 3), --interval-s S apart (default 5)
  --json           end with one line {"figures": {"<variant>_<role>_pss_mib": median, ...}}
  --help           this text`;

const argv = parseBenchArgs(USAGE, {
  options: {
    variant: { type: "string", multiple: true, default: [] },
    per: { type: "string", default: "2" },
    "settle-s": { type: "string", default: "20" },
    samples: { type: "string", default: "3" },
    "interval-s": { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

interface Variant {
  name: string;
  flags: string[];
  env: Record<string, string>;
  bare: boolean;
  poolSize: number;
  warmShims: number;
  cli?: string;
}

function parseVariant(spec: string): Variant {
  const colon = spec.indexOf(":");
  if (colon <= 0) throw new UsageError(`--variant ${JSON.stringify(spec)}: expected NAME:KEY=VALUE,...`);
  const v: Variant = { name: spec.slice(0, colon), flags: [], env: {}, bare: false, poolSize: 1, warmShims: 1 };
  for (const kv of spec.slice(colon + 1).split(",").filter((s) => s !== "")) {
    const eq = kv.indexOf("=");
    const [k, val] = eq < 0 ? [kv, ""] : [kv.slice(0, eq), kv.slice(eq + 1)];
    if (k === "flag") v.flags.push(val);
    else if (k === "env") {
      const e = val.indexOf("=");
      if (e <= 0) throw new UsageError(`--variant ${v.name}: env=${val} must be NAME=VALUE`);
      v.env[val.slice(0, e)] = val.slice(e + 1);
    } else if (k === "bare") v.bare = val !== "0";
    else if (k === "pool") v.poolSize = intOption(`variant ${v.name} pool`, val, 0);
    else if (k === "warm") v.warmShims = intOption(`variant ${v.name} warm`, val, 0);
    else if (k === "cli") v.cli = val;
    else throw new UsageError(`--variant ${v.name}: unknown key ${JSON.stringify(k)} (flag, env, bare, pool, warm, cli)`);
  }
  return v;
}

const opts = checkOptions(USAGE, () => {
  const variants = (argv.variant.length === 0 ? ["default:"] : argv.variant).map(parseVariant);
  if (new Set(variants.map((v) => v.name)).size !== variants.length) throw new UsageError("variant names must differ");
  return {
    variants,
    per: intOption("per", argv.per, 1),
    settleS: numberOption("settle-s", argv["settle-s"], 0),
    samples: intOption("samples", argv.samples, 1),
    intervalS: numberOption("interval-s", argv["interval-s"], 0),
    json: argv.json,
  };
});

type Role = "daemon" | "warm_shim" | "qemu" | "virtiofsd";
const roles: Role[] = ["daemon", "warm_shim", "qemu", "virtiofsd"];

interface Pool {
  variant: Variant;
  dir: string;
  paths: PoolPaths;
  child: ChildProcess;
  exited: Promise<void>;
}

async function startPool(variant: Variant, i: number): Promise<Pool> {
  const dir = await mkdtemp(join(tmpdir(), `kts-poolmem-${variant.name}-${i}-`));
  const config = join(dir, "configuration.toml");
  await writeFile(config, `[factory]\npool_size = ${variant.poolSize}\nwarm_shims = ${variant.warmShims}\n`);
  const prod = poolDaemonSpawn(config, process.env);
  const env: NodeJS.ProcessEnv = { ...(variant.bare ? process.env : prod.env), ...variant.env, KATA_TS_STATE_DIR: join(dir, "state") };
  const cliArgs = variant.cli === undefined ? prod.args : [variant.cli, ...prod.args.slice(1)];
  const args = [...(variant.bare ? [] : prod.nodeFlags), ...variant.flags, ...cliArgs];
  const child = spawn(process.execPath, args, { env, detached: true, cwd: "/", stdio: ["ignore", "ignore", "ignore"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { variant, dir, paths: poolPaths(join(dir, "state", "kata-ts-pool")), child, exited };
}

async function full(p: Pool): Promise<boolean> {
  const res = await poolCall(p.paths.socket, { op: "status" }, 2000).catch(() => undefined);
  if (res?.ok !== true || res.status === undefined) return false;
  const s = res.status;
  const ready = s.shapes.reduce((n, sh) => n + sh.ready, 0);
  return ready >= p.variant.poolSize && (s.warmShims?.ready ?? 0) >= p.variant.warmShims;
}

/** The pool's processes by role: found by their command line or environment naming its dir. */
async function poolProcesses(p: Pool): Promise<Map<Role, number[]>> {
  const out = new Map<Role, number[]>(roles.map((r) => [r, []]));
  const pid = p.child.pid;
  if (pid !== undefined) out.get("daemon")!.push(pid);
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === pid) continue;
    const cmdline = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0");
    const environ = await readFile(`/proc/${name}/environ`, "utf8").catch(() => "");
    if (!cmdline.join(" ").includes(p.dir) && !environ.includes(p.dir)) continue;
    if (cmdline.some((a) => a.includes("qemu-system"))) out.get("qemu")!.push(Number(name));
    else if (cmdline.some((a) => a.endsWith("virtiofsd"))) out.get("virtiofsd")!.push(Number(name));
    else if (isShimServerCmdline(cmdline)) out.get("warm_shim")!.push(Number(name));
  }
  return out;
}

async function memoryKiB(pid: number): Promise<{ pss: number; anon: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  const field = (n: string): number => Number(new RegExp(`^${n}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { pss: field("Pss"), anon: field("Pss_Anon") };
}

const pools: Pool[] = [];
async function stopAll(): Promise<void> {
  for (const p of pools) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
  await Promise.race([Promise.all(pools.map((p) => p.exited)), sleep(60_000)]);
  for (const p of pools) {
    const left = [...(await poolProcesses(p)).values()].flat().filter((pid) => pid !== p.child.pid);
    if (left.length > 0) console.error(`pool ${p.dir}: processes left after stop: ${left.join(" ")}`);
    await rm(p.dir, { recursive: true, force: true });
  }
}
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => void stopAll().then(() => process.exit(130)));

try {
  const load0 = loadavg()[0]!;
  for (let i = 0; i < opts.per; i++) for (const v of opts.variants) pools.push(await startPool(v, i));
  const deadline = Date.now() + 600_000;
  for (const p of pools) {
    while (!(await full(p))) {
      if (p.child.exitCode !== null) throw new Error(`the ${p.variant.name} pool daemon in ${p.dir} exited (${p.child.exitCode})`);
      if (Date.now() > deadline) throw new Error(`the ${p.variant.name} pool in ${p.dir} was not full within 600 s`);
      await sleep(1000);
    }
  }
  console.log(`all ${pools.length} pools full; settling ${opts.settleS} s`);
  await sleep(opts.settleS * 1000);
  const pss = new Map<string, number[]>();
  const anon = new Map<string, number[]>();
  for (let s = 0; s < opts.samples; s++) {
    if (s > 0) await sleep(opts.intervalS * 1000);
    for (const p of pools) {
      const procs = await poolProcesses(p);
      for (const role of roles) {
        let sumPss = 0;
        let sumAnon = 0;
        for (const pid of procs.get(role) ?? []) {
          const m = await memoryKiB(pid);
          sumPss += m.pss;
          sumAnon += m.anon;
        }
        if ((procs.get(role) ?? []).length === 0) continue;
        const key = `${p.variant.name}_${role}`;
        pss.set(key, [...(pss.get(key) ?? []), sumPss / 1024]);
        anon.set(key, [...(anon.get(key) ?? []), sumAnon / 1024]);
      }
    }
  }
  const figures: Record<string, number> = {};
  console.log(`load average ${load0.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} now; MiB, medians over ${opts.per} pools x ${opts.samples} samples`);
  console.log(`${"variant".padEnd(14)}${roles.map((r) => `${r} PSS (anon)`.padStart(26)).join("")}`);
  for (const v of opts.variants) {
    const cells = roles.map((r) => {
      const key = `${v.name}_${r}`;
      const m = median(pss.get(key) ?? []);
      const a = median(anon.get(key) ?? []);
      figures[`${key}_pss_mib`] = m;
      figures[`${key}_anon_mib`] = a;
      const all = (pss.get(key) ?? []).map((x) => x.toFixed(1)).join("/");
      return `${m.toFixed(1)} (${a.toFixed(1)}) [${all}]`.padStart(26);
    });
    console.log(`${v.name.padEnd(14)}${cells.join("")}`);
  }
  if (opts.json) console.log(figuresLine(figures));
} finally {
  await stopAll();
}
