// The node installer's containerd side: register the `kata-ts` runtime handler with containerd's
// CRI plugin through a drop-in file named in config.toml's top-level `imports`, without touching
// any other byte of the operator's config.toml; uninstall puts the original file back.
//
// containerd 1.6 merges an imported file by REPLACING each whole plugin section it names (checked
// with `containerd config dump`): a drop-in holding only
// [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata-ts] would wipe the operator's
// sandbox_image, CNI dirs and even the runc runtime. So the drop-in carries the complete
// effective CRI section (config.toml's, overridden by earlier imports, as containerd would) plus
// our runtime, and it is imported last.
import { parse, stringify, type TomlTable } from "smol-toml";
import { KataError } from "../util/errors.js";

export const DEFAULT_HANDLER = "kata-ts";
export const KATA_TS_RUNTIME_TYPE = "io.containerd.kata-ts.v2";
/** kata-ts reads its own pod annotations (io.katats.*); containerd passes only listed globs on. */
export const DEFAULT_POD_ANNOTATIONS = ["io.katats.*"];

/** The CRI plugin's name in each config version containerd knows. */
const CRI_PLUGIN_BY_VERSION: Readonly<Record<number, string>> = {
  2: "io.containerd.grpc.v1.cri", // containerd 1.5-1.7
  3: "io.containerd.cri.v1.runtime", // containerd 2.x
};

export interface KataTsHandler {
  handlerName?: string;
  /** Absolute path of containerd-shim-kata-ts-v2. */
  runtimePath: string;
  /** kata-ts configuration.toml given to the shim as runtimeoptions ConfigPath. */
  kataConfigPath?: string;
  podAnnotations?: string[];
  containerAnnotations?: string[];
  privilegedWithoutHostDevices?: boolean;
}

export interface ParsedContainerdConfig {
  table: TomlTable;
  version: number;
  criPlugin: string;
  imports: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** Parse and check a containerd config; errors name the file and what was wrong. */
export function parseContainerdConfig(text: string, file: string): ParsedContainerdConfig {
  let table: TomlTable;
  try {
    table = parse(text);
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", `cannot parse containerd config ${file}: ${(err as Error).message}; nothing was changed`, {
      cause: err,
    });
  }
  const version = table.version === undefined ? 1 : Number(table.version);
  const criPlugin = CRI_PLUGIN_BY_VERSION[version];
  if (criPlugin === undefined) {
    throw new KataError(
      "FAILED_PRECONDITION",
      `containerd config ${file} is version ${version}; kata-ts installs into version 2 or 3 configs only (a file without "version" is version 1: run "containerd config default" for a version 2 template); nothing was changed`,
    );
  }
  const imports = table.imports ?? [];
  if (!Array.isArray(imports) || imports.some((i) => typeof i !== "string")) {
    throw new KataError("INVALID_ARGUMENT", `containerd config ${file}: "imports" must be an array of paths; nothing was changed`);
  }
  return { table, version, criPlugin, imports: imports as string[] };
}

/** The CRI plugin section of a parsed config, if it has one. */
export function criSection(table: TomlTable, criPlugin: string): Obj | undefined {
  const plugins = table.plugins;
  if (!isObj(plugins)) return undefined;
  const cri = plugins[criPlugin];
  return isObj(cri) ? cri : undefined;
}

/** The runtime handler table, with containerd's TOML key names. */
export function handlerTable(h: KataTsHandler): Obj {
  return {
    runtime_type: KATA_TS_RUNTIME_TYPE,
    runtime_path: h.runtimePath,
    privileged_without_host_devices: h.privilegedWithoutHostDevices ?? true,
    pod_annotations: h.podAnnotations ?? DEFAULT_POD_ANNOTATIONS,
    container_annotations: h.containerAnnotations ?? [],
    ...(h.kataConfigPath ? { options: { ConfigPath: h.kataConfigPath } } : {}),
  };
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/**
 * The drop-in's text: `base` (the effective CRI section before our import, or undefined when no
 * file sets one) with the kata-ts runtime added, keeping the default runtime (runc) defined even
 * when the operator relied on containerd's built-in default, which the replacement would drop.
 */
export function renderDropIn(parsed: Pick<ParsedContainerdConfig, "version" | "criPlugin">, base: Obj | undefined, h: KataTsHandler): string {
  const cri: Obj = clone(base ?? {});
  const containerd: Obj = isObj(cri.containerd) ? cri.containerd : {};
  cri.containerd = containerd;
  const runtimes: Obj = isObj(containerd.runtimes) ? containerd.runtimes : {};
  containerd.runtimes = runtimes;
  const defaultName = typeof containerd.default_runtime_name === "string" ? containerd.default_runtime_name : "runc";
  if (defaultName === "runc" && runtimes.runc === undefined) runtimes.runc = { runtime_type: "io.containerd.runc.v2" };
  runtimes[h.handlerName ?? DEFAULT_HANDLER] = handlerTable(h);
  const header = [
    "# Written by kata-ts (src/deploy/containerd-config.ts); removed by its uninstall.",
    "# containerd 1.6/1.7 replace a whole plugin section from an imported file, so this file repeats",
    "# the CRI section in effect before it (config.toml and earlier imports) and adds the kata-ts",
    "# runtime. Re-run the kata-ts install after changing the CRI section elsewhere.",
  ].join("\n");
  return `${header}\n${stringify({ version: parsed.version, plugins: { [parsed.criPlugin]: cri } })}\n`;
}
