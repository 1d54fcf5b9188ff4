// One setting read before the configuration is loaded and validated (load.ts, with zod): what
// `start` must know before it spawns anything, at the cost of a TOML parse. The full load, later,
// validates the same file and refuses what is wrong in it.
import { readFile } from "node:fs/promises";
import { parse as parseToml } from "smol-toml";
import { configFileCandidates } from "./paths.js";

/** `[runtime] shim_server` of the file load.ts would read ("node", the default, when unset or unreadable); $KATA_TS_SHIM_SERVER wins. */
export async function peekShimServer(configPath: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<"pod" | "node"> {
  const forced = env.KATA_TS_SHIM_SERVER;
  if (forced === "node" || forced === "pod") return forced;
  const { explicit, optional } = configFileCandidates({ ...(configPath === undefined ? {} : { configPath }), env });
  for (const path of [...explicit.map(([p]) => p), ...optional]) {
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text === undefined) {
      if (explicit.some(([p]) => p === path)) return "node"; // the load at Create names the missing file
      continue;
    }
    try {
      const runtime = (parseToml(text) as { runtime?: { shim_server?: unknown } }).runtime;
      return runtime?.shim_server === "pod" ? "pod" : "node";
    } catch {
      return "node"; // the load at Create says what is wrong with the file
    }
  }
  return "node";
}
