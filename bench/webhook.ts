// Tenancy webhook latency: `kata-ts tenancy webhook` runs as its own process (as in a cluster),
// with a certificate kata-ts generated; 1,000 AdmissionReviews (a mix of mutations, allowed and
// refused validations, trusted and non-tenant pods) are sent over verified HTTPS keep-alive
// connections, 50 at a time. Prints p50/p99 latency; asserts nothing.
// Run: npx tsc -p tsconfig.json && node dist/bench/webhook.js (options: see USAGE below, or --help)
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { generateWebhookTls, writeWebhookTls } from "../src/tenancy/tls.js";
import { call, pod, POLICY_YAML, review, webhookAgent } from "../test/integration/webhook-fixtures.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";

const USAGE = `usage: node dist/bench/webhook.js [--requests N] [--concurrency N] [--json]

Runs \`kata-ts tenancy webhook\` in its own process with a generated certificate and sends it
AdmissionReviews (a mix of mutations and validations) over verified HTTPS keep-alive connections;
prints latency p50/p90/p99, throughput and server CPU per review. Exits 1 if a review failed.

  --requests N      AdmissionReviews sent, after a warm-up (default 1000)
  --concurrency N   connections sending at once (default 50)
  --json            end with one line {"figures": {...}}
  --help            this text`;

const values = parseBenchArgs(USAGE, { options: { requests: { type: "string", default: "1000" }, concurrency: { type: "string", default: "50" }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const { REQUESTS, CONCURRENCY } = checkOptions(USAGE, () => ({ REQUESTS: intOption("requests", values.requests, 1), CONCURRENCY: intOption("concurrency", values.concurrency, 1) }));
const CLI = fileURLToPath(new URL("../../bin/kata-ts.js", import.meta.url));

const kata = { runtimeClassName: "kata-ts", overhead: { cpu: "250m", memory: "160Mi" } };
// [path, review, expected allowed]
const MIX: [string, () => Record<string, unknown>, boolean][] = [
  ["/mutate", () => review({ namespace: "acme-prod", object: pod("web", "acme-prod") }), true],
  ["/validate", () => review({ namespace: "acme-prod", object: pod("web", "acme-prod", kata) }), true],
  ["/validate", () => review({ namespace: "acme-dev", object: pod("bad", "acme-dev", { ...kata, hostNetwork: true }) }), false],
  ["/validate", () => review({ namespace: "platform-tools", object: pod("tool", "platform-tools", { runtimeClassName: "runc" }) }), true],
  ["/mutate", () => review({ namespace: "other", object: pod("x", "other") }), true],
];

/** CPU seconds a process has used, from /proc (Linux; clock ticks are 100 Hz there). */
async function procCpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-bench-webhook-"));
  const tls = generateWebhookTls({ dnsNames: ["localhost"] });
  await writeWebhookTls(dir, tls);
  await writeFile(join(dir, "policy.yaml"), POLICY_YAML);
  const args = [CLI, "tenancy", "webhook", "--policy", join(dir, "policy.yaml"), "--cert", join(dir, "tls.crt"), "--key", join(dir, "tls.key"), "--host", "127.0.0.1", "--port", "0"];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, KATA_TS_LOG_LEVEL: "info" } });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const agent = webhookAgent(tls.caCert, CONCURRENCY);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("webhook did not start within 30 s")), 30_000);
      const lines = createInterface({ input: child.stderr });
      lines.on("line", (line) => {
        try {
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === "tenancy webhook listening" && typeof rec.port === "number") {
            clearTimeout(timer);
            resolve(rec.port);
          }
        } catch {
          // not a log record
        }
      });
      void exited.then((code) => reject(new Error(`webhook exited with ${code} before listening`)));
    });
    const bodies = Array.from({ length: REQUESTS }, (_, i) => {
      const [path, make, allowed] = MIX[i % MIX.length] as (typeof MIX)[number];
      return { path, body: JSON.stringify(make()), allowed };
    });
    // Warm-up: TLS handshakes and JIT, not measured.
    await Promise.all(Array.from({ length: CONCURRENCY }, () => call(port, tls.caCert, "/healthz", { agent })));
    const latencies: number[] = [];
    let errors = 0;
    let next = 0;
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    const serverCpuStart = await procCpuSeconds(child.pid);
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < bodies.length) {
          const b = bodies[next++] as (typeof bodies)[number];
          const t0 = performance.now();
          try {
            const res = await call(port, tls.caCert, b.path, { body: b.body, agent });
            latencies.push(performance.now() - t0);
            const allowed = (JSON.parse(res.body) as { response?: { allowed?: boolean } }).response?.allowed;
            if (res.status !== 200 || allowed !== b.allowed) errors++;
          } catch {
            errors++;
          }
        }
      }),
    );
    const wall = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const serverCpu = (await procCpuSeconds(child.pid)) - serverCpuStart;
    const [load1] = loadavg();
    latencies.sort((a, b) => a - b);
    const f = (n: number) => n.toFixed(2);
    process.stdout.write(
      `webhook: ${REQUESTS} AdmissionReviews, concurrency ${CONCURRENCY}, HTTPS keep-alive, server in its own process\n` +
        `  errors ${errors}\n` +
        `  latency ms: p50 ${f(percentile(latencies, 50))}  p90 ${f(percentile(latencies, 90))}  p99 ${f(percentile(latencies, 99))}  max ${f(latencies.at(-1) ?? NaN)}\n` +
        `  throughput ${(REQUESTS / wall).toFixed(0)} reviews/s over ${wall.toFixed(2)} s; client CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s\n` +
        `  server CPU ${serverCpu.toFixed(2)} s = ${((serverCpu * 1000) / REQUESTS).toFixed(2)} ms per review; host load average ${load1?.toFixed(1)} on ${cpus().length} CPUs\n`,
    );
    if (values.json) {
      const figures = {
        latency_p50_ms: +f(percentile(latencies, 50)),
        latency_p99_ms: +f(percentile(latencies, 99)),
        reviews_per_s: Math.round(REQUESTS / wall),
        server_cpu_ms_per_review: +((serverCpu * 1000) / REQUESTS).toFixed(2),
        errors,
      };
      process.stdout.write(`${JSON.stringify({ figures })}\n`);
    }
    if (errors > 0) process.exitCode = 1;
  } finally {
    agent.destroy();
    if (child.exitCode === null) child.kill("SIGTERM");
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 10_000).unref())]);
    if (code === "timeout") child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
