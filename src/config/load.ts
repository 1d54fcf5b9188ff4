// Which configuration file applies, in Kata's order: the CRI handler's ConfigPath runtime option,
// then $KATA_TS_CONFIG, then /etc/kata-ts/configuration.toml, then the installed default; with no
// file at all, the built-in defaults. An explicitly named file that is missing is an error (a typo
// in ConfigPath must not silently fall back to defaults); the system locations are optional.
import { readFile } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import { parseConfig } from "./parse.js";
import { defaultConfig, type KataConfig } from "./schema.js";

import { configFileCandidates } from "./paths.js";

export { installedConfigPath, systemConfigPath } from "./paths.js";

export interface ConfigSearch {
  /** runtimeoptions.v1.Options.config_path from containerd (CRI handler option ConfigPath). */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Overridable for tests. */
  systemPath?: string;
  installedPath?: string;
}

export interface LoadedConfig {
  config: KataConfig;
  /** The file the config came from, or "built-in defaults". */
  source: string;
}

export async function loadConfig(search: ConfigSearch = {}): Promise<LoadedConfig> {
  const env = search.env ?? process.env;
  const { explicit, optional } = configFileCandidates(search);
  for (const [path, origin] of explicit) {
    const text = await readText(path);
    if (text === undefined) {
      throw new KataError("NOT_FOUND", `configuration file ${path} (from ${origin}) does not exist: create it or fix ${origin}`);
    }
    return poolOverride({ config: parseConfig(text, path), source: path }, env);
  }
  for (const path of optional) {
    const text = await readText(path);
    if (text !== undefined) return poolOverride({ config: parseConfig(text, path), source: path }, env);
  }
  return poolOverride({ config: defaultConfig(), source: "built-in defaults" }, env);
}

/**
 * KATA_TS_SHIM_SERVER=node|pod picks the shim server whatever the file says.
 * KATA_TS_POOL=off in the environment (of containerd, so of its shims) turns the VM pool off
 * whatever the file says: the test harness's private containerds use it so that tests which are
 * not about the pool do not start a pool daemon and double the VM boots (docs/pool.md).
 */
function poolOverride(loaded: LoadedConfig, env: NodeJS.ProcessEnv): LoadedConfig {
  if (env.KATA_TS_POOL === "off") loaded.config.factory.enable_pool = false;
  // As `start` reads it (peek.ts): the pool daemon then keeps no warm per-pod servers either.
  if (env.KATA_TS_SHIM_SERVER === "node" || env.KATA_TS_SHIM_SERVER === "pod") loaded.config.runtime.shim_server = env.KATA_TS_SHIM_SERVER;
  return loaded;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new KataError("INVALID_ARGUMENT", `configuration file ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}
