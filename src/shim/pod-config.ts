// The pod's configuration in the shim server. `start` validates configuration.toml and reads the
// guest assets manifest (both with zod schemas) while the server starts, and writes the result as
// plain JSON on a pipe (the fd CONFIG_FD_ENV names); the server takes it at Create. So the server never loads zod
// and its schemas, ~8 MiB of every pod's shim for the pod's whole life (docs/shim.md "Memory").
// When that hand-over is missing or was for another file (a Create naming another ConfigPath, a
// configuration start could not load), the server loads the file itself, as before: an invalid
// file fails the pod's Create with the same error either way.
import { Socket } from "node:net";
import type { Readable } from "node:stream";
import type { KataConfig } from "../config/schema.js";
import type { GuestAssets } from "../guest/assets.js";
import { describeError } from "../util/errors.js";
import { CONFIG_FD_ENV } from "./flags.js";
import type { Logger } from "../util/log.js";

/** What `start` hands the server. */
export interface PreparedPodConfig {
  /** The ConfigPath runtime option `start` loaded for ("" for the default search). */
  configPath: string;
  /** Absent when loading failed: the server loads the file at Create and reports why. */
  config?: KataConfig;
  /** The file the configuration came from, or "built-in defaults". */
  source?: string;
  /** The pod's guest assets from that configuration (absent when they could not be read). */
  assets?: GuestAssets;
}

export interface PodConfig {
  config: KataConfig;
  source: string;
  assets?: GuestAssets;
  /** "start": handed over by `start`; "file": loaded (and validated) by the server itself. */
  from: "start" | "file";
}

/** How long the server waits for `start`'s hand-over after Create asked: `start` itself gives up within 10 s. */
const handOverDeadlineMs = 15_000;

/** The pipe `start` writes the hand-over on, if this server was started by `start`. */
export function handOverPipe(): Readable | undefined {
  const fd = Number(process.env[CONFIG_FD_ENV]);
  delete process.env[CONFIG_FD_ENV];
  if (!Number.isInteger(fd) || fd < 3) return undefined;
  try {
    return new Socket({ fd, readable: true, writable: false });
  } catch {
    return undefined;
  }
}

/**
 * Reads the hand-over from `input` (a pipe from `start`) until EOF. Never
 * rejects: a missing, late or malformed hand-over is `undefined` (logged), and the server loads
 * the configuration itself.
 */
export function readPreparedConfig(input: Readable | undefined, log: Logger): Promise<PreparedPodConfig | undefined> {
  if (input === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => done(new Error(`no hand-over within ${handOverDeadlineMs} ms`)), handOverDeadlineMs);
    timer.unref();
    const done = (err?: Error): void => {
      clearTimeout(timer);
      input.removeAllListeners("data").removeAllListeners("end").removeAllListeners("error");
      input.destroy();
      const text = Buffer.concat(chunks).toString("utf8");
      if (err !== undefined || text === "") {
        if (err !== undefined) log.warn({ err: describeError(err) }, "no configuration from start: loading it at Create");
        return resolve(undefined);
      }
      try {
        const parsed = JSON.parse(text) as PreparedPodConfig;
        resolve(typeof parsed.configPath === "string" ? parsed : undefined);
      } catch (parseErr) {
        log.warn({ err: describeError(parseErr) }, "configuration from start is not JSON: loading it at Create");
        resolve(undefined);
      }
    };
    input.on("data", (chunk: Buffer) => chunks.push(chunk));
    input.once("end", () => done());
    input.once("error", (err) => done(err));
  });
}

/** The configuration for a pod whose Create names `configPath` ("" = the default search). */
export async function podConfig(configPath: string, prepared: Promise<PreparedPodConfig | undefined> | undefined): Promise<PodConfig> {
  const p = await prepared;
  if (p?.config !== undefined && p.source !== undefined && p.configPath === configPath) {
    return { config: p.config, source: p.source, ...(p.assets === undefined ? {} : { assets: p.assets }), from: "start" };
  }
  const { loadConfig } = await import("../config/load.js");
  return { ...(await loadConfig({ configPath })), from: "file" };
}
