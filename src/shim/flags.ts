// containerd calls shims with Go `flag` syntax: single-dash flags before the action, e.g.
//   -namespace k8s.io -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id ID start
// (runtime/v2/binary.go). Go accepts `-f v`, `-f=v`, `--f v`, and bare `-f` for booleans; parsing
// stops at the first non-flag argument or at `--`. Unknown flags are errors, as in Go.
import { KataError } from "../util/errors.js";

export interface ShimFlags {
  namespace: string;
  id: string;
  address: string;
  publishBinary: string;
  bundle: string;
  debug: boolean;
  version: boolean;
  /** Internal (start -> serve): the socket path the server listens on. */
  socket: string;
  /** Internal (start -> serve): runtimeoptions ConfigPath received on start's stdin. */
  configPath: string;
}

export interface ParsedArgs {
  flags: ShimFlags;
  action: string | undefined;
  rest: string[];
}

const stringFlags: Record<string, keyof ShimFlags> = {
  namespace: "namespace",
  id: "id",
  address: "address",
  "publish-binary": "publishBinary",
  bundle: "bundle",
  socket: "socket",
  "config-path": "configPath",
};
const boolFlags: Record<string, keyof ShimFlags> = { debug: "debug", v: "version" };

export function parseShimArgs(argv: readonly string[]): ParsedArgs {
  const flags: ShimFlags = {
    namespace: "",
    id: "",
    address: "",
    publishBinary: "containerd",
    bundle: "",
    debug: false,
    version: false,
    socket: "",
    configPath: "",
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    const boolKey = boolFlags[name];
    const strKey = stringFlags[name];
    if (boolKey !== undefined) {
      (flags[boolKey] as boolean) = parseBool(name, inline ?? "true");
    } else if (strKey !== undefined) {
      let value = inline;
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new KataError("INVALID_ARGUMENT", `flag needs an argument: -${name}`);
      }
      (flags[strKey] as string) = value;
    } else {
      throw new KataError("INVALID_ARGUMENT", `flag provided but not defined: -${name}`);
    }
  }
  const [action, ...rest] = argv.slice(i);
  return { flags, action, rest };
}

function parseBool(name: string, text: string): boolean {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(text)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(text)) return false;
  throw new KataError("INVALID_ARGUMENT", `invalid boolean value "${text}" for -${name}`);
}

/** The flags back as argv, for re-executing ourselves as the server (strings only when set). */
export function formatShimFlags(flags: Partial<ShimFlags>): string[] {
  const out: string[] = [];
  for (const [name, key] of Object.entries(stringFlags)) {
    const value = flags[key];
    if (typeof value === "string" && value !== "") out.push(`-${name}`, value);
  }
  if (flags.debug === true) out.push("-debug");
  return out;
}

/** Environment variable by which `start` hands its process's start time (epoch ms) to the server it spawns. */
export const START_AT_ENV = "KATA_TS_SHIM_START_AT";

/** Names of the variables `start` added to the server's environment for the server alone (its malloc settings), comma-separated. */
export const SERVER_ENV_SET_ENV = "KATA_TS_SHIM_ENV_SET";

/** The fd on which the server writes one line once it listens (`start` waits on it). */
export const READY_FD_ENV = "KATA_TS_SHIM_READY_FD";

/** The fd from which the server reads the configuration `start` validated (src/shim/pod-config.ts). */
export const CONFIG_FD_ENV = "KATA_TS_SHIM_CONFIG_FD";
