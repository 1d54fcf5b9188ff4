// The client half of bench/network.ts, run inside the harness netns (nsenter) so that no bench
// traffic touches the host's own network. One job per run, printed as one JSON line:
//   connect IP PORT COUNT   sequential TCP connects; ms from connect() to established, each
//   get IP PORT COUNT       sequential HTTP/1.0 GETs on new connections; ms to the whole response
//   upload IP PORT BYTES    bytes written to a sink; seconds from connect to the server's close
//   download IP PORT        bytes read until the server closes; seconds from connect
import { connect, type Socket } from "node:net";

const [job, ip = "", portText = "", countText = "0"] = process.argv.slice(2);
const port = Number(portText);
const DEADLINE_MS = 120_000;

function open(): Promise<{ sock: Socket; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const sock = connect({ host: ip, port, noDelay: true });
    sock.setTimeout(DEADLINE_MS, () => sock.destroy(new Error(`no progress within ${DEADLINE_MS} ms`)));
    sock.once("connect", () => resolve({ sock, ms: performance.now() - t0 }));
    sock.once("error", reject);
  });
}

function closed(sock: Socket, onData: (n: number) => void = () => undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.on("data", (d: Buffer) => onData(d.length));
    sock.once("close", () => resolve());
    sock.once("error", reject);
  });
}

async function connects(count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const { sock, ms } = await open();
    out.push(ms);
    sock.destroy();
  }
  return out;
}

async function gets(count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const { sock } = await open();
    const done = closed(sock);
    sock.end("GET / HTTP/1.0\r\n\r\n");
    await done;
    out.push(performance.now() - t0);
  }
  return out;
}

async function upload(bytes: number): Promise<{ bytes: number; seconds: number }> {
  const t0 = performance.now();
  const { sock } = await open();
  const done = closed(sock);
  const chunk = Buffer.alloc(64 * 1024);
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!sock.write(chunk)) await new Promise((r) => sock.once("drain", r));
  }
  sock.end();
  await done;
  return { bytes, seconds: (performance.now() - t0) / 1000 };
}

async function download(): Promise<{ bytes: number; seconds: number }> {
  const t0 = performance.now();
  const { sock } = await open();
  let bytes = 0;
  await closed(sock, (n) => (bytes += n));
  return { bytes, seconds: (performance.now() - t0) / 1000 };
}

const jobs: Record<string, () => Promise<unknown>> = {
  connect: () => connects(Number(countText)),
  get: () => gets(Number(countText)),
  upload: () => upload(Number(countText)),
  download: () => download(),
};
const fn = jobs[job ?? ""];
if (fn === undefined || ip === "" || !(port > 0)) {
  process.stderr.write("usage: network-client connect|get|upload|download IP PORT [COUNT|BYTES]\n");
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(await fn())}\n`);
