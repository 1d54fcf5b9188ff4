// A stand-in VMM, run as a real process on a real unix socket: `node main.js cloud-hypervisor
// --api-socket path=S` or `node main.js firecracker --api-sock S --id ID`, like the real binaries
// (a test puts a tiny wrapper script where the driver expects the binary). It checks every request
// against schemas written from the VMM's published API document and logs requests and deviations
// to $STANDIN_LOG (JSON lines); $STANDIN_FAULT picks a failure (common.ts).
import { rm } from "node:fs/promises";
import type http from "node:http";
import { chServer, chVersion, parseChArgs } from "./ch.js";
import { faultFromEnv } from "./common.js";
import { fcServer, fcVersion, parseFcArgs } from "./fc.js";
import { StandinLog } from "./log.js";

async function main(): Promise<void> {
  const [kind, ...argv] = process.argv.slice(2);
  if (argv.includes("--version")) {
    process.stdout.write(kind === "firecracker" ? `Firecracker v${fcVersion}\n` : `cloud-hypervisor ${chVersion}\n`);
    return;
  }
  const log = new StandinLog(process.env.STANDIN_LOG);
  const fault = faultFromEnv();
  let server: http.Server;
  let socket: string;
  if (kind === "cloud-hypervisor") {
    socket = parseChArgs(argv);
    server = chServer(log, fault);
  } else if (kind === "firecracker") {
    const args = parseFcArgs(argv);
    socket = args.apiSocket;
    server = fcServer(log, fault, args.id, args.apiSocket);
  } else {
    throw new Error(`unknown VMM kind ${kind ?? "(none)"}: cloud-hypervisor | firecracker`);
  }
  await rm(socket, { force: true });
  server.listen(socket);
}

main().catch((err: unknown) => {
  process.stderr.write(`stand-in: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
