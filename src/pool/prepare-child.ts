// A short-lived child of the pool daemon (prepared-config.ts): `node prepare-child.js CONFIG_PATH`
// loads and validates the configuration and reads the pod's guest assets (both with zod schemas),
// writes the plain result as one JSON line on stdout and exits. zod and the schemas live and die
// with this process, not with the daemon.
import { loadConfig } from "../config/load.js";
import { describeError, KataError } from "../util/errors.js";
import type { PreparedResult } from "./prepared-config.js";
import { podAssets } from "./shape.js";

async function prepare(configPath: string): Promise<PreparedResult> {
  try {
    const loaded = await loadConfig({ configPath });
    const assets = await podAssets(loaded.config).catch(() => undefined);
    return { ok: true, prepared: { configPath, config: loaded.config, source: loaded.source, ...(assets === undefined ? {} : { assets }) } };
  } catch (err) {
    return { ok: false, code: err instanceof KataError ? err.code : "INTERNAL", message: describeError(err) };
  }
}

process.stdout.write(`${JSON.stringify(await prepare(process.argv[2] ?? ""))}\n`);
