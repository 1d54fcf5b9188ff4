// `kata-ts install` / `kata-ts uninstall` on a node: the self-contained tree under /opt/kata-ts
// (./node-install-artifacts.ts), the CRI handler in containerd's config (./containerd-install.ts,
// the same code `kata-ts containerd install` runs), then a containerd restart where one can be
// done (./node-install-restart.ts). The containerd config is parsed before anything is written,
// so an unparsable one is refused with nothing changed. Both directions are idempotent.
import { readFile } from "node:fs/promises";
import { assetsDir } from "../util/paths.js";
import { parseContainerdConfig, DEFAULT_HANDLER } from "./containerd-config.js";
import { DEFAULT_CONTAINERD_CONFIG, installContainerdHandler, uninstallContainerdHandler, type UninstallResult } from "./containerd-install.js";
import { DEFAULT_INSTALL_ROOT, installArtifacts, installedLayout, removeArtifacts, type ArtifactSources } from "./node-install-artifacts.js";
import { restartContainerd, type RestartMode, type RestartOutcome } from "./node-install-restart.js";
import { packageRoot } from "./paths.js";
import { DEFAULT_SHIM_LINK_DIR } from "./shim-link.js";

/** The label the DaemonSet puts on nodes with kata-ts installed; the RuntimeClass selects it. */
export const NODE_LABEL_KEY = "kata-ts.io/runtime";
export const NODE_LABEL_VALUE = "true";

export interface NodeInstallOptions {
  /** Install root; default /opt/kata-ts. */
  root?: string;
  containerdConfigPath?: string;
  /** Default <config dir>/kata-ts/cri-runtime.toml. */
  dropInPath?: string;
  /** Where to link the shim so containerd 1.6 finds it by name; undefined: no link. */
  shimLinkDir?: string;
  handlerName?: string;
  restart?: RestartMode;
  sources?: Partial<ArtifactSources>;
}

export interface NodeInstallResult {
  root: string;
  shimPath: string;
  configPath: string;
  artifactsChanged: boolean;
  containerdConfigChanged: boolean;
  restart: RestartOutcome;
}

export interface NodeUninstallResult {
  root: string;
  containerdConfig: UninstallResult["config"];
  artifactsRemoved: boolean;
  restart: RestartOutcome;
}

/** Defaults for a real node: /opt/kata-ts, /etc/containerd/config.toml, shim linked in /usr/local/bin. */
export function nodeDefaults(): Required<Pick<NodeInstallOptions, "root" | "containerdConfigPath" | "shimLinkDir" | "handlerName" | "restart">> {
  return {
    root: DEFAULT_INSTALL_ROOT,
    containerdConfigPath: DEFAULT_CONTAINERD_CONFIG,
    shimLinkDir: DEFAULT_SHIM_LINK_DIR,
    handlerName: DEFAULT_HANDLER,
    restart: "auto",
  };
}

async function checkConfigParses(path: string): Promise<void> {
  const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined; // install creates a minimal one
    throw err;
  });
  if (text !== undefined) parseContainerdConfig(text, path);
}

export async function installNode(opts: NodeInstallOptions = {}): Promise<NodeInstallResult> {
  const root = opts.root ?? DEFAULT_INSTALL_ROOT;
  const configPath = opts.containerdConfigPath ?? DEFAULT_CONTAINERD_CONFIG;
  await checkConfigParses(configPath); // before the first write: a bad config changes nothing
  const sources: ArtifactSources = {
    packageRoot: opts.sources?.packageRoot ?? packageRoot(),
    assetsDir: opts.sources?.assetsDir ?? assetsDir(),
    nodeBinary: opts.sources?.nodeBinary ?? process.execPath,
  };
  const layout = installedLayout(root);
  const artifactsChanged = await installArtifacts(root, sources);
  const res = await installContainerdHandler({
    containerdConfigPath: configPath,
    dropInPath: opts.dropInPath,
    runtimePath: layout.shimPath,
    kataConfigPath: layout.configPath,
    handlerName: opts.handlerName,
    shimLinkDir: opts.shimLinkDir,
  });
  const containerdConfigChanged = res.configChanged || res.dropInChanged || res.shimLinkChanged;
  // Only a changed config needs containerd to re-read it; new artifacts are picked up per pod.
  const restart = containerdConfigChanged
    ? await restartContainerd(opts.restart ?? "auto", configPath)
    : { restarted: false, message: "containerd config unchanged: no restart needed" };
  return { root, shimPath: layout.shimPath, configPath: layout.configPath, artifactsChanged, containerdConfigChanged, restart };
}

export async function uninstallNode(opts: Omit<NodeInstallOptions, "sources" | "shimLinkDir" | "handlerName"> = {}): Promise<NodeUninstallResult> {
  const root = opts.root ?? DEFAULT_INSTALL_ROOT;
  const configPath = opts.containerdConfigPath ?? DEFAULT_CONTAINERD_CONFIG;
  await checkConfigParses(configPath);
  const res = await uninstallContainerdHandler({ containerdConfigPath: configPath, dropInPath: opts.dropInPath });
  const artifactsRemoved = await removeArtifacts(root);
  const restart =
    res.config === "untouched"
      ? { restarted: false, message: `kata-ts was not in ${configPath}: no restart needed` }
      : await restartContainerd(opts.restart ?? "auto", configPath);
  return { root, containerdConfig: res.config, artifactsRemoved, restart };
}
