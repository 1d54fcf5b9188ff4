// The shim's Node start-ups on a pod start, without VMs: for each shim build (the tsc output
// dist/src/shim/main.js, the esbuild bundle, ...), containerd's `start` run as containerd runs it
// (cwd = a bundle dir with config.json, empty stdin), which spawns the `serve` process and waits
// for its socket; then a second `start` for an app container of the same pod (its server already
// listens). Per run: each `start`'s CPU (user+sys) and wall time, the server's CPU until it
// listened and its wall time from exec to listening, and the server's PSS once settled (pod
// factory loaded, no pod). Builds interleave run by run, so load from elsewhere hits all alike.
// Prints medians; never asserts.
// Usage: see USAGE below (`node dist/bench/shim-startup.js --help`).
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { checkOptions, intOption, numberOption, parseBenchArgs, UsageError } from "./lib/args.js";
import { pssKiB } from "./lib/pod-pss.js";
import { shimBundlePath } from "../src/shim/bundle-path.js";

const USAGE = `usage: node dist/bench/shim-startup.js [--runs N] [--settle-s S] [--shim NAME=FILE]... [--json]

The shim's start-ups without VMs: containerd's \`start\` (which spawns \`serve\` and waits for its
socket), then a second \`start\` that finds the server listening (an app container's); CPU and wall
of each, the server's CPU and wall until it listened, its PSS once settled. Builds interleaved.

  --runs N          runs per build (default 10)
  --settle-s S      seconds after the server listens before its PSS is read (default 2)
  --shim NAME=FILE  a shim entry to measure (repeatable); default: tsc=dist/src/shim/main.js and
                    bundle=${shimBundlePath.split("/").slice(-4).join("/")}
  --json            end with one line {"figures": {...}}
  --help            this text`;

interface Run {
  startCpuMs: number;
  startWallMs: number;
  serveCpuMs: number;
  serveWallMs: number;
  startToListenMs: number;
  appStartCpuMs: number;
  appStartWallMs: number;
  servePssMiB: number;
}

async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 100 Hz ticks
}

/** Runs `node entry args` under bash, whose `times` gives the child's CPU to the ms. */
function timedNode(entry: string, args: string[], cwd: string): Promise<{ cpuMs: number; wallMs: number; stdout: string }> {
  const script = `"$0" "$@" </dev/null || exit $?; times >&2`;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("bash", ["-c", script, process.execPath, entry, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      const wallMs = performance.now() - t0;
      // times: shell user/sys, then children user/sys ("0m0.123s 0m0.045s").
      const line = stderr.trim().split("\n").at(-1) ?? "";
      const secs = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
      if (code !== 0 || secs.length !== 2) return reject(new Error(`${entry} ${args.join(" ")} failed (status ${code}): ${stderr}`));
      resolve({ cpuMs: ((secs[0] ?? 0) + (secs[1] ?? 0)) * 1000, wallMs, stdout });
    });
  });
}

async function waitExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await readFile(`/proc/${pid}/stat`, "utf8").then(() => true, () => false)) {
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The server's "shim serving" log line: written just after it listens, so maybe after `start` returned. */
async function servingLine(log: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const line = (await readFile(log, "utf8").catch(() => "")).split("\n").find((l) => l.includes('"shim serving"'));
    if (line !== undefined) return line;
    if (Date.now() > deadline) return "{}";
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function measureOnce(entry: string, settleS: number, n: number): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-shim-startup-"));
  const id = `bench-${process.pid}-${n}`;
  // A unique containerd address: the socket is /run/containerd/s/<sha256(address/ns/id)>.
  const flags = ["-namespace", "bench", "-address", join(dir, "containerd.sock"), "-publish-binary", "/bin/true", "-id", id];
  let servePid: number | undefined;
  let socket: string | undefined;
  try {
    await writeFile(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: {} }));
    const start = await timedNode(entry, [...flags, "start"], dir);
    socket = start.stdout.trim().replace(/^unix:\/\//, "");
    const line = JSON.parse(await servingLine(join(dir, "log"))) as { pid?: number; serveProcessAt?: number; listeningAt?: number; startProcessAt?: number };
    if (line.pid === undefined || line.serveProcessAt === undefined || line.listeningAt === undefined || line.startProcessAt === undefined) {
      throw new Error(`no "shim serving" line in ${join(dir, "log")}`);
    }
    servePid = line.pid;
    const serveCpuMs = await cpuMs(servePid);
    const app = await timedNode(entry, [...flags, "start"], dir);
    await new Promise((r) => setTimeout(r, settleS * 1000));
    const servePssMiB = (await pssKiB(servePid)) / 1024;
    return {
      startCpuMs: start.cpuMs,
      startWallMs: start.wallMs,
      serveCpuMs,
      serveWallMs: line.listeningAt - line.serveProcessAt,
      startToListenMs: line.listeningAt - line.startProcessAt,
      appStartCpuMs: app.cpuMs,
      appStartWallMs: app.wallMs,
      servePssMiB,
    };
  } finally {
    if (servePid !== undefined) {
      process.kill(servePid, "SIGTERM");
      await waitExit(servePid, 10_000);
    }
    if (socket !== undefined) await rm(socket, { force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      runs: { type: "string", default: "10" },
      "settle-s": { type: "string", default: "2" },
      shim: { type: "string", multiple: true },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const { runs, settleS, shims } = checkOptions(USAGE, () => ({
    runs: intOption("runs", values.runs, 1),
    settleS: numberOption("settle-s", values["settle-s"], 0),
    shims: (values.shim ?? [`tsc=${join(import.meta.dirname, "..", "src", "shim", "main.js")}`, `bundle=${shimBundlePath}`]).map((s) => {
      const eq = s.indexOf("=");
      if (eq <= 0 || eq === s.length - 1) throw new UsageError(`--shim must be NAME=FILE, got ${JSON.stringify(s)}`);
      return { name: s.slice(0, eq), entry: resolve(s.slice(eq + 1)) };
    }),
  }));
  const results = new Map<string, Run[]>(shims.map((s) => [s.name, []]));
  const load0 = loadavg()[0] ?? 0;
  for (let i = 0; i < runs; i++) {
    // Rotate the order each run: whoever goes first may find colder caches.
    const order = shims.map((_, k) => shims[(k + i) % shims.length]!);
    for (const s of order) results.get(s.name)!.push(await measureOnce(s.entry, settleS, i));
  }
  const figures: Record<string, number> = { runs, load_avg_1m_start: load0, load_avg_1m_end: loadavg()[0] ?? 0 };
  const keys: (keyof Run)[] = ["startCpuMs", "startWallMs", "serveCpuMs", "serveWallMs", "startToListenMs", "appStartCpuMs", "appStartWallMs", "servePssMiB"];
  for (const s of shims) {
    const rs = results.get(s.name)!;
    const parts = keys.map((k) => {
      const m = median(rs.map((r) => r[k]));
      figures[`${s.name}_${k.replace("MiB", "Mib").replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`] = Number(m.toFixed(1));
      return `${k} ${m.toFixed(k === "servePssMiB" ? 1 : 0)}`;
    });
    console.log(`${s.name} (${s.entry}), medians of ${runs}: ${parts.join(", ")}`);
  }
  console.log(`load average (1 min) ${load0.toFixed(1)} at the start, ${(loadavg()[0] ?? 0).toFixed(1)} at the end`);
  if (values.json) console.log(JSON.stringify({ figures }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
