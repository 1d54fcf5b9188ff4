// Install/uninstall of the kata-ts handler on a node's containerd config (files only; restarting
// containerd is the caller's job). Install writes the drop-in, keeps a byte copy of config.toml,
// then adds the drop-in to `imports` by a text splice that is re-parsed and checked to change
// nothing else. Re-running install is a no-op except for refreshing the drop-in; uninstall
// restores the original bytes (or, if the operator edited config.toml since, removes only our
// import entry).
import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { TomlTable } from "smol-toml";
import { KataError } from "../util/errors.js";
import { criSection, parseContainerdConfig, renderDropIn, type KataTsHandler } from "./containerd-config.js";
import { linkShim, unlinkShim } from "./shim-link.js";
import { addImport, removeImport } from "./toml-imports.js";

export const DEFAULT_CONTAINERD_CONFIG = "/etc/containerd/config.toml";

export interface ContainerdInstallOptions extends KataTsHandler {
  containerdConfigPath?: string;
  /** Default: <config dir>/kata-ts/cri-runtime.toml (outside the usual conf.d/*.toml globs). */
  dropInPath?: string;
  /**
   * A directory on containerd's PATH to link the shim into (containerd 1.6 finds shims by name,
   * not by runtime_path). Default: no link; the CLI uses /usr/local/bin.
   */
  shimLinkDir?: string;
}

export interface InstallResult {
  configChanged: boolean;
  dropInChanged: boolean;
  shimLinkChanged: boolean;
  dropInPath: string;
}

export interface UninstallResult {
  /** "backup": original bytes restored; "edited": our import removed from a since-edited file. */
  config: "backup" | "edited" | "removed" | "untouched";
  dropInPath: string;
}

interface InstallState {
  configPath: string;
  configExisted: boolean;
  installedSha256: string;
  /** The shim link made by install, and what it points to. */
  shimLink?: { path: string; target: string };
}

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

export function installPaths(opts: Pick<ContainerdInstallOptions, "containerdConfigPath" | "dropInPath">) {
  const configPath = opts.containerdConfigPath ?? DEFAULT_CONTAINERD_CONFIG;
  const dropInPath = opts.dropInPath ?? join(dirname(configPath), "kata-ts", "cri-runtime.toml");
  return { configPath, dropInPath, backupPath: `${dropInPath}.config-backup`, statePath: `${dropInPath}.state.json` };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Write via a temp file and rename, so containerd never reads half a file; keeps `mode`. */
async function writeAtomic(path: string, text: string, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.kata-ts-tmp`);
  await writeFile(tmp, text, { mode: mode ?? 0o644 });
  if (mode !== undefined) await chmod(tmp, mode);
  await rename(tmp, path);
}

/** Files an import entry names, as containerd 1.6 resolves it (relative to config.toml; `*` globs in the file name). */
async function resolveImport(entry: string, configPath: string): Promise<string[]> {
  const path = isAbsolute(entry) ? entry : join(dirname(configPath), entry);
  const name = basename(path);
  if (!/[*?[]/.test(name)) return [path];
  const re = new RegExp(`^${name.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")}$`);
  const files = await readdir(dirname(path)).catch(() => [] as string[]);
  return files.filter((f) => re.test(f)).sort().map((f) => join(dirname(path), f));
}

/** The CRI section containerd would use before our drop-in: config.toml's, replaced by each import's. */
async function effectiveCriSection(configPath: string, table: TomlTable, criPlugin: string, imports: string[], dropInPath: string) {
  let section = criSection(table, criPlugin);
  for (const entry of imports) {
    for (const file of await resolveImport(entry, configPath)) {
      if (file === dropInPath) continue;
      const text = await readIfExists(file);
      if (text === undefined) continue;
      const sub = parseContainerdConfig(text, file);
      section = criSection(sub.table, criPlugin) ?? section;
    }
  }
  return section;
}

/** addImport, then proof by re-parsing that only `imports` changed and it gained exactly our path. */
function spliceImport(text: string, file: string, dropInPath: string): string {
  const before = parseContainerdConfig(text, file);
  const out = addImport(text, dropInPath);
  const after = parseContainerdConfig(out, file);
  const strip = (t: TomlTable) => Object.fromEntries(Object.entries(t).filter(([k]) => k !== "imports"));
  if (!isDeepStrictEqual(strip(before.table), strip(after.table)) || !isDeepStrictEqual(after.imports, [...before.imports, dropInPath])) {
    throw new KataError("INTERNAL", `could not add an import to ${file} without changing other settings; nothing was changed`);
  }
  return out;
}

export async function installContainerdHandler(opts: ContainerdInstallOptions): Promise<InstallResult> {
  const { configPath, dropInPath, backupPath, statePath } = installPaths(opts);
  if (!isAbsolute(opts.runtimePath)) throw new KataError("INVALID_ARGUMENT", `runtime path must be absolute: ${opts.runtimePath}`);
  const original = await readIfExists(configPath);
  const text = original ?? "version = 2\n";
  const parsed = parseContainerdConfig(text, configPath);
  const base = await effectiveCriSection(configPath, parsed.table, parsed.criPlugin, parsed.imports, dropInPath);
  const dropIn = renderDropIn(parsed, base, opts);
  parseContainerdConfig(dropIn, dropInPath); // our own output must parse, or nothing is written

  const dropInChanged = (await readIfExists(dropInPath)) !== dropIn;
  const configChanged = !parsed.imports.includes(dropInPath);
  const newText = configChanged ? spliceImport(text, configPath, dropInPath) : text;
  const link = opts.shimLinkDir === undefined ? undefined : await linkShim(opts.shimLinkDir, opts.runtimePath);
  if (dropInChanged) await writeAtomic(dropInPath, dropIn);
  const stateText = await readIfExists(statePath);
  let state = stateText === undefined ? undefined : (JSON.parse(stateText) as InstallState);
  if (configChanged) {
    const mode = original === undefined ? 0o644 : (await stat(configPath)).mode & 0o7777;
    if (state === undefined) {
      // The backup is taken once, before the first change: uninstall returns to these bytes.
      if (original !== undefined) await writeAtomic(backupPath, original, mode);
      state = { configPath, configExisted: original !== undefined, installedSha256: sha256(newText) };
    }
    await writeAtomic(configPath, newText, mode);
  }
  if (state && link) state.shimLink = { path: link.linkPath, target: opts.runtimePath };
  if (state && (configChanged || link?.changed)) await writeAtomic(statePath, `${JSON.stringify(state, null, 2)}\n`, 0o600);
  return { configChanged, dropInChanged, dropInPath, shimLinkChanged: link?.changed ?? false };
}

export async function uninstallContainerdHandler(
  opts: Pick<ContainerdInstallOptions, "containerdConfigPath" | "dropInPath"> = {},
): Promise<UninstallResult> {
  const { configPath, dropInPath, backupPath, statePath } = installPaths(opts);
  const stateText = await readIfExists(statePath);
  const state = stateText === undefined ? undefined : (JSON.parse(stateText) as InstallState);
  const current = await readIfExists(configPath);
  let result: UninstallResult["config"] = "untouched";
  if (current !== undefined && state && sha256(current) === state.installedSha256) {
    // Unchanged since install: put the operator's exact bytes back (or remove the file we made).
    const backup = await readIfExists(backupPath);
    if (state.configExisted && backup !== undefined) {
      await writeAtomic(configPath, backup, (await stat(configPath)).mode & 0o7777);
      result = "backup";
    } else if (!state.configExisted) {
      await rm(configPath, { force: true });
      result = "removed";
    }
  } else if (current !== undefined && parseContainerdConfig(current, configPath).imports.includes(dropInPath)) {
    const edited = removeImport(current, dropInPath);
    parseContainerdConfig(edited, configPath);
    await writeAtomic(configPath, edited, (await stat(configPath)).mode & 0o7777);
    result = "edited";
  }
  if (state?.shimLink) await unlinkShim(state.shimLink.path, state.shimLink.target);
  for (const f of [dropInPath, backupPath, statePath]) await rm(f, { force: true });
  await rmdir(dirname(dropInPath)).catch(() => undefined); // only if empty
  return { config: result, dropInPath };
}
