// Pod network figures, kata-ts against runc in the same run: a private containerd (in its own
// netns, bridge CNI) runs one pod of each, and a Node client inside the harness netns measures TCP
// connect latency, HTTP GET latency (new connection each, busybox httpd), and TCP throughput both
// ways (busybox nc with a sink and a /dev/zero source). Prints medians, p90s, MB/s and the
// kata-ts/runc ratios; asserts nothing. Under TCG the guest's CPU is emulated: expect large ratios.
// Run: npx tsc -p tsconfig.json && node dist/bench/network.js (options: see USAGE below, or --help)
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectCri, type CriClient } from "../src/cri/client.js";
import { assertNoLeaks, startContainerd, type PrivateContainerd } from "../test/harness/containerd.js";
import { importTestImages } from "../test/harness/images.js";
import { HANDLER, installHandler, shimOnPath } from "../test/e2e/kata-pod-flow.js";
import { WEB_PORT, inHarnessNetns, startWebPod, type WebPod } from "../test/e2e/network-pods.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";

const USAGE = `usage: node dist/bench/network.js [--samples N] [--mib N] [--json]

One kata-ts pod and one runc pod (busybox httpd and nc) on a private containerd with bridge CNI; a
client in the harness netns measures TCP connect and HTTP GET latency and TCP throughput both ways,
and prints p50/p90, MB/s and the kata-ts/runc ratios.

  --samples N   connects and GETs per pod, each on a new connection (default 50)
  --mib N       MiB sent each way per throughput measurement (default 32)
  --json        end with one line {"figures": {...}}
  --help        this text`;

const values = parseBenchArgs(USAGE, { options: { samples: { type: "string", default: "50" }, mib: { type: "string", default: "32" }, json: { type: "boolean", default: false }, help: { type: "boolean", default: false } } });
const { SAMPLES, MIB } = checkOptions(USAGE, () => ({ SAMPLES: intOption("samples", values.samples, 1), MIB: intOption("mib", values.mib, 1) }));
const SINK_PORT = 5001;
const SOURCE_PORT = 5002;
const CLIENT = join(fileURLToPath(new URL(".", import.meta.url)), "network-client.js");

/** Before the web server starts: a sink and a source, one nc process per connection (-ll -e). */
const PREPARE = [
  `printf '#!/bin/sh\\ncat >/dev/null\\n' > /sink.sh`,
  `printf '#!/bin/sh\\nexec dd if=/dev/zero bs=65536 count=${MIB * 16} 2>/dev/null\\n' > /source.sh`,
  "chmod +x /sink.sh /source.sh",
  `(nc -ll -p ${SINK_PORT} -e /sink.sh &)`,
  `(nc -ll -p ${SOURCE_PORT} -e /source.sh &)`,
].join(" && ");

interface Figures {
  connectMs: number[];
  getMs: number[];
  uploadMBps: number;
  downloadMBps: number;
}

async function client<T>(ctd: PrivateContainerd, args: string[]): Promise<T> {
  const out = await inHarnessNetns(ctd, process.execPath, [CLIENT, ...args], 300_000);
  return JSON.parse(out.stdout) as T;
}

async function measure(ctd: PrivateContainerd, pod: WebPod): Promise<Figures> {
  await client(ctd, ["get", pod.ip, String(WEB_PORT), "3"]); // warm-up (ARP, page cache, JIT)
  const connectMs = await client<number[]>(ctd, ["connect", pod.ip, String(WEB_PORT), String(SAMPLES)]);
  const getMs = await client<number[]>(ctd, ["get", pod.ip, String(WEB_PORT), String(SAMPLES)]);
  const up = await client<{ bytes: number; seconds: number }>(ctd, ["upload", pod.ip, String(SINK_PORT), String(MIB * 1024 * 1024)]);
  const down = await client<{ bytes: number; seconds: number }>(ctd, ["download", pod.ip, String(SOURCE_PORT)]);
  return { connectMs, getMs, uploadMBps: up.bytes / 1e6 / up.seconds, downloadMBps: down.bytes / 1e6 / down.seconds };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

function row(name: string, kata: number, runc: number, unit: string): string {
  return `${name.padEnd(26)} ${kata.toFixed(2).padStart(10)} ${runc.toFixed(2).padStart(10)}  ${unit.padEnd(5)} ${(kata / runc).toFixed(2).padStart(7)}x`;
}

let ctd: PrivateContainerd | undefined;
let cri: CriClient | undefined;
const pods: WebPod[] = [];
try {
  ctd = await startContainerd({ beforeStart: installHandler(), env: shimOnPath() });
  await importTestImages(ctd);
  cri = connectCri(ctd.address);
  const kata = await startWebPod(ctd, cri, { name: "bench-kata", handler: HANDLER, prepare: PREPARE });
  pods.push(kata);
  const runc = await startWebPod(ctd, cri, { name: "bench-runc", handler: "runc", prepare: PREPARE });
  pods.push(runc);
  const k = await measure(ctd, kata);
  const r = await measure(ctd, runc);
  const lines = [
    `pod network, harness netns -> pod (bridge CNI); ${SAMPLES} samples, ${MIB} MiB transfers`,
    `${"".padEnd(26)} ${"kata-ts".padStart(10)} ${"runc".padStart(10)}  ${"".padEnd(5)} ${"ratio".padStart(8)}`,
    row("TCP connect p50", pct(k.connectMs, 50), pct(r.connectMs, 50), "ms"),
    row("TCP connect p90", pct(k.connectMs, 90), pct(r.connectMs, 90), "ms"),
    row("HTTP GET (new conn) p50", pct(k.getMs, 50), pct(r.getMs, 50), "ms"),
    row("HTTP GET (new conn) p90", pct(k.getMs, 90), pct(r.getMs, 90), "ms"),
    row("upload (to pod)", k.uploadMBps, r.uploadMBps, "MB/s"),
    row("download (from pod)", k.downloadMBps, r.downloadMBps, "MB/s"),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  if (values.json) {
    const figures = {
      kata_connect_p50_ms: pct(k.connectMs, 50),
      runc_connect_p50_ms: pct(r.connectMs, 50),
      kata_get_p50_ms: pct(k.getMs, 50),
      runc_get_p50_ms: pct(r.getMs, 50),
      kata_upload_mbps: k.uploadMBps,
      runc_upload_mbps: r.uploadMBps,
      kata_download_mbps: k.downloadMBps,
      runc_download_mbps: r.downloadMBps,
    };
    process.stdout.write(`${JSON.stringify({ figures })}\n`);
  }
} finally {
  for (const p of pods) await p.remove().catch(() => undefined);
  cri?.close();
  await ctd?.stop();
  if (ctd) await assertNoLeaks(ctd);
}
