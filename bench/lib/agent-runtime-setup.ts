// What bench/agent-runtime.ts runs: the agent's bundle (as build-assets makes it), the bytes of a
// host's first Health.Check, a QEMU path prefix that plays the guest's files (a virtio-serial port
// named agent.0 holding that request), node's V8 startup snapshot of the agent built under the
// same emulator (V8 checks the CPU features a snapshot was made with), Bun's bytecode of the bundle.
import { execFile } from "node:child_process";
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { promisify } from "node:util";
import { bundleAgent } from "../../src/guest/agent-bundle.js";
import { createClient, TtrpcClient } from "../../src/protocol/ttrpc/index.js";
import { Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { cacheDir } from "../../src/util/paths.js";
import { GUEST_ENV, QEMU_USER, USER_MODE_CPU } from "./user-mode-run.js";

const run = promisify(execFile);

/** The Bun release the bench fetches with `npm pack` when --bun is not given. */
export const BUN_PACKAGE = "@oven/bun-linux-x64@1.4.4";

export interface AgentRuntimeWork {
  dir: string;
  prefix: string;
  agentScript: string;
  nodeSnapshot: string;
  /** --alt-node's snapshot of the agent, when given. */
  altNodeSnapshot: string | undefined;
  bunBytecodeScript: string;
  portFile: string;
  request: Buffer;
}

/** The path of the fake port inside the prefix, as the agent finds it under /sys/class/virtio-ports. */
const PORT = "vport9p1";

export async function prepareWork(dir: string, runtimes: { node: string; altNode: string | undefined; bun: string }): Promise<AgentRuntimeWork> {
  const prefix = join(dir, "prefix");
  const files: Record<string, string> = {
    [`sys/class/virtio-ports/${PORT}/name`]: "agent.0\n",
    "proc/cmdline": "console=ttyS0 quiet\n",
    "proc/sys/vm/drop_caches": "",
    "sys/module/page_reporting/parameters/page_reporting_order": "",
    "dev/kmsg": "",
  };
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(prefix, path, ".."), { recursive: true });
    await writeFile(join(prefix, path), text);
  }
  const agentScript = join(dir, "agent.cjs");
  await writeFile(agentScript, (await bundleAgent()).code);
  const nodeSnapshot = await buildSnapshot(runtimes.node, prefix, agentScript, join(dir, "agent.snapshot"));
  const altNodeSnapshot = runtimes.altNode === undefined ? undefined : await buildSnapshot(runtimes.altNode, prefix, agentScript, join(dir, "alt-agent.snapshot"));
  await run(runtimes.bun, ["build", agentScript, "--bytecode", "--target=bun", "--format=cjs", "--outdir", join(dir, "bytecode")], { timeout: 120_000 });
  return {
    dir,
    prefix,
    agentScript,
    nodeSnapshot,
    altNodeSnapshot,
    bunBytecodeScript: join(dir, "bytecode", "agent.js"),
    portFile: join(prefix, "dev", PORT),
    request: await checkRequestBytes(),
  };
}

/** The agent's V8 startup snapshot, built under the emulator as the guest builds it in a VM. */
async function buildSnapshot(node: string, prefix: string, agentScript: string, out: string): Promise<string> {
  const args = ["-L", prefix, "-cpu", USER_MODE_CPU, node, "--jitless", "--snapshot-blob", out, "--build-snapshot", agentScript];
  await run(QEMU_USER, args, { timeout: 300_000, env: GUEST_ENV });
  return out;
}

/** Puts the request back into the port before a run (the agent writes its reply after it). */
export async function resetPort(work: AgentRuntimeWork): Promise<void> {
  await writeFile(work.portFile, work.request);
}

/** The bytes a host's ttRPC client sends for Health.Check, captured from the real client. */
async function checkRequestBytes(): Promise<Buffer> {
  const written: Buffer[] = [];
  const sink = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, done) {
      written.push(Buffer.from(chunk));
      done();
    },
  });
  const client = new TtrpcClient(sink);
  const call = createClient(client, Health).check({}, { timeoutMs: 60_000 }).catch(() => undefined);
  await new Promise((resolve) => setImmediate(resolve));
  client.close();
  sink.destroy();
  await call;
  return Buffer.concat(written);
}

/** The bun binary: --bun's, or the npm package's, fetched once into the cache with `npm pack`. */
export async function findBun(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  const dir = join(cacheDir(), "bench", BUN_PACKAGE.replace(/[@/]/g, "_"));
  const bun = join(dir, "package", "bin", "bun");
  if (await stat(bun).then(() => true, () => false)) return bun;
  await mkdir(dir, { recursive: true });
  await run("npm", ["pack", "--silent", BUN_PACKAGE], { cwd: dir, timeout: 600_000 });
  const tarball = (await readdir(dir)).find((f) => f.endsWith(".tgz"));
  if (tarball === undefined) throw new Error(`npm pack ${BUN_PACKAGE} left no tarball in ${dir}`);
  await run("tar", ["xzf", tarball], { cwd: dir });
  await rm(join(dir, tarball));
  return bun;
}
