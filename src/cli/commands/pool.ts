// `kata-ts pool serve|status|stop`: the node's pool of pre-booted VMs (src/pool, docs/pool.md).
import { parseArgs } from "node:util";
import { poolPaths } from "../../pool/layout.js";
import { poolCall } from "../../pool/protocol.js";
import { cachedPrepare, prepareInChild } from "../../pool/prepared-config.js";
import { PoolServer } from "../../pool/server.js";
import { stopPool } from "../../pool/stop.js";
import { requirePoolVmm } from "../../pool/shape.js";
import { dropOwnMallocEnv } from "../../shim/server-env.js";
import { KataError } from "../../util/errors.js";
import { createLogger } from "../../util/log.js";

const usage = "usage: kata-ts pool serve [--config FILE] | status [--json] | stop [--timeout SECONDS]";

export async function run(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: "string" }, json: { type: "boolean", default: false }, timeout: { type: "string", default: "60" } },
  });
  switch (verb) {
    case "serve":
      return serve(values.config);
    case "status":
      return status(values.json);
    case "stop":
      return stop(Number(values.timeout));
    default:
      throw new KataError("INVALID_ARGUMENT", usage);
  }
}

async function serve(configPath: string | undefined): Promise<number> {
  // The daemon's own malloc settings (owner.ts poolDaemonSpawn) are not its QEMUs' and virtiofsds'.
  dropOwnMallocEnv(process.env);
  // Validated in a child process (pool/prepared-config.ts): the daemon lives as long as the node, and zod in its heap would too.
  // Warm shim servers get the same, validated again only when a file it was read from changed, and
  // then at the refill priority; this first one runs at the daemon's.
  const at: { nice?: number } = {};
  const prepare = cachedPrepare((path) => prepareInChild(path, at.nice));
  const { config, source, assets } = await prepare(configPath ?? "");
  at.nice = config.factory.refill_nice;
  if (!config.factory.enable_pool) {
    throw new KataError("FAILED_PRECONDITION", `[factory] enable_pool is false in ${source}: shims would not take pooled VMs; set it to true there`);
  }
  requirePoolVmm(config, source);
  const log = createLogger("pool");
  const server = await PoolServer.start({ config, log, configPath: configPath ?? "", ...(assets === undefined ? {} : { assets }), prepareConfig: prepare });
  const onSignal = (): void => void server.stop();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  await server.stopped();
  // Stopped: the pooled VMs are gone and the pool's files removed. What this process may still
  // hold (a handed-over VM's console connection, its processes' handles) belongs to the pods that
  // adopted them and must not keep the daemon, and `kata-ts pool stop`, waiting until they end.
  setImmediate(() => process.exit(0));
  return 0;
}

async function status(json: boolean): Promise<number> {
  const res = await poolCall(poolPaths().socket, { op: "status" });
  if (!res.ok || res.status === undefined) throw new KataError("INTERNAL", res.ok ? "the pool sent no status" : res.error);
  const s = res.status;
  if (json) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`pool pid ${s.pid}: ${s.poolSize} per shape; booted ${s.booted}, taken ${s.taken}, reclaimed untaken ${s.reclaimed ?? 0}, failed boots ${s.bootFailures}\n`);
  for (const sh of s.shapes) {
    const mib = (sh.rssKiB / 1024).toFixed(0);
    process.stdout.write(`  shape ${sh.key}: ${sh.vcpus} vCPU, ${sh.memoryMiB} MiB${sh.tenant === "" ? "" : `, tenant ${sh.tenant}`}: ${sh.ready} ready (${mib} MiB resident), ${sh.booting} booting\n`);
  }
  if (s.warmShims !== undefined) process.stdout.write(`  warm shim servers: ${s.warmShims.ready} ready, ${s.warmShims.starting} starting; handed to ${s.warmShims.taken} pods\n`);
  return 0;
}

async function stop(timeoutS: number): Promise<number> {
  if ((await stopPool(poolPaths(), timeoutS * 1000)) === "none") process.stderr.write("kata-ts pool stop: no pool is running\n");
  return 0;
}
