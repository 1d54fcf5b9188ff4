// The pool daemon's configuration without zod in its own heap. Validating configuration.toml and
// reading the guest assets manifest load zod and the schemas: +4.3 MiB of a Node process's
// anonymous memory, held for the process's life once imported (ES modules are never unloaded),
// and the daemon lives as long as the node. So a short-lived child does both
// (prepare-child.ts) and hands over plain values: at the daemon's start, and for each warm shim
// server, which gets what `start` hands a server it spawns (src/shim/prepare-config.ts). A worker
// thread was tried first: its freed malloc arena stayed resident (+2 MiB), a child's goes with it
// (bench/pool-memory.ts, docs/pool.md "Memory cost").
import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import { getPriority } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { installedConfigPath, systemConfigPath } from "../config/paths.js";
import type { KataConfig } from "../config/schema.js";
import type { GuestAssets } from "../guest/assets.js";
import type { PreparedPodConfig } from "../shim/pod-config.js";
import { KataError, type KataErrorCode } from "../util/errors.js";
import { assetsDir } from "../util/paths.js";

export type PreparedResult = { ok: true; prepared: PreparedPodConfig & { config: KataConfig; source: string } } | { ok: false; code: KataErrorCode; message: string };

export type PreparedConfig = PreparedPodConfig & { config: KataConfig; source: string; assets?: GuestAssets };

/** A validating child that has not answered this long is killed (its start-up may run at a low priority on a busy host). */
const childDeadlineMs = 60_000;
const maxOutputBytes = 4 << 20;
const childScript = fileURLToPath(new URL("./prepare-child.js", import.meta.url));

/**
 * The configuration `configPath` names ("" for the default search), validated, with the pod's guest
 * assets when they can be read, from a child process at nice value `nice` (default: this
 * process's). Rejects with the loader's error (its code and message) when the configuration is
 * missing or invalid.
 */
export async function prepareInChild(configPath: string, nice?: number): Promise<PreparedConfig> {
  const inc = nice === undefined ? 0 : nice - getPriority(0);
  const [cmd, argv] = inc > 0 ? ["nice", ["-n", String(inc), process.execPath, childScript, configPath]] : [process.execPath, [childScript, configPath]];
  const what = `validating ${configPath === "" ? "the configuration" : configPath}`;
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let size = 0;
  child.stdout.on("data", (b: Buffer) => {
    size += b.length;
    if (size <= maxOutputBytes) out.push(b);
  });
  child.stderr.on("data", (b: Buffer) => {
    if (err.length < 64) err.push(b);
  });
  const status = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new KataError("DEADLINE_EXCEEDED", `${what} took over ${childDeadlineMs / 1000} s`));
    }, childDeadlineMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new KataError("INTERNAL", `${what}: cannot run ${process.execPath} ${childScript}`, { cause: e }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve(signal !== null ? `signal ${signal}` : `status ${code}`);
    });
  });
  let res: PreparedResult;
  try {
    res = JSON.parse(Buffer.concat(out).toString("utf8")) as PreparedResult;
  } catch {
    throw new KataError("INTERNAL", `${what}: the child exited (${status}) without an answer: ${Buffer.concat(err).toString("utf8").trim().slice(-2000)}`);
  }
  if (!res.ok) throw new KataError(res.code, res.message);
  return res.prepared;
}

/**
 * prepareInChild, run again only when what it read may have changed: every configuration file the
 * search looks at, the guest assets manifest, and the environment variables it reads. The daemon
 * hands each warm shim server the result (one per pod start that took one): a child per refill
 * would cost ~0.2 CPU-s each.
 */
export function cachedPrepare(prepare: (configPath: string) => Promise<PreparedConfig>): (configPath: string) => Promise<PreparedConfig> {
  let last: { key: string; value: PreparedConfig } | undefined;
  return async (configPath) => {
    const key = await inputsSignature(configPath);
    if (last?.key === key) return last.value;
    const value = await prepare(configPath);
    last = { key, value };
    return value;
  };
}

async function inputsSignature(configPath: string): Promise<string> {
  const env = process.env;
  const files = [configPath, env.KATA_TS_CONFIG ?? "", systemConfigPath, installedConfigPath, join(assetsDir(), "manifest.json")].filter((f) => f !== "");
  const stats = await Promise.all(files.map((f) => stat(f).then((s) => `${f}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`, () => `${f}:-`)));
  return JSON.stringify([stats, env.KATA_TS_CONFIG, env.KATA_TS_POOL, env.KATA_TS_ASSETS_DIR]);
}
