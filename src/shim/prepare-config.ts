// `start`'s side of the configuration hand-over (pod-config.ts): loads and validates the
// configuration and the pod's guest assets as the server will need them at Create. Runs in
// `start` only, beside the server's own start-up; the zod schemas it loads die with `start`.
import { loadConfig } from "../config/load.js";
import { podAssets } from "../pool/shape.js";
import type { PreparedPodConfig } from "./pod-config.js";

/** Never rejects: what fails here the server loads again at Create, which reports the error. */
export async function preparePodConfig(configPath: string): Promise<PreparedPodConfig> {
  let loaded;
  try {
    loaded = await loadConfig({ configPath });
  } catch {
    return { configPath };
  }
  const assets = await podAssets(loaded.config).catch(() => undefined);
  return { configPath, config: loaded.config, source: loaded.source, ...(assets === undefined ? {} : { assets }) };
}
