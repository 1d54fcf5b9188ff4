// kata-ts containerd install|uninstall: register (or remove) the kata-ts CRI runtime handler in a
// node's containerd config. Restart containerd afterwards (e.g. systemctl restart containerd).
import { parseArgs } from "node:util";
import { describeError } from "../../util/errors.js";
import { DEFAULT_CONTAINERD_CONFIG, installContainerdHandler, uninstallContainerdHandler } from "../../deploy/containerd-install.js";
import { packagedShimPath } from "../../deploy/paths.js";
import { DEFAULT_SHIM_LINK_DIR } from "../../deploy/shim-link.js";

const USAGE = `usage: kata-ts containerd install [--config PATH] [--drop-in PATH] [--runtime-path PATH] [--kata-config PATH] [--handler NAME] [--shim-link-dir DIR]
       kata-ts containerd uninstall [--config PATH] [--drop-in PATH]
  --config        containerd config.toml (default ${DEFAULT_CONTAINERD_CONFIG})
  --drop-in       the drop-in file to write (default <config dir>/kata-ts/cri-runtime.toml)
  --runtime-path  containerd-shim-kata-ts-v2 (default: the one in this kata-ts package)
  --kata-config   kata-ts configuration.toml handed to the shim (options.ConfigPath)
  --handler       runtime handler / RuntimeClass handler name (default kata-ts)
  --shim-link-dir where to link containerd-shim-kata-ts-v2 so containerd finds it by name
                  (default ${DEFAULT_SHIM_LINK_DIR}; "" for none)
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      "drop-in": { type: "string" },
      "runtime-path": { type: "string" },
      "kata-config": { type: "string" },
      handler: { type: "string" },
      "shim-link-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const action = positionals[0];
  if (values.help || (action !== "install" && action !== "uninstall")) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const paths = { containerdConfigPath: values.config, dropInPath: values["drop-in"] };
  try {
    if (action === "install") {
      const res = await installContainerdHandler({
        ...paths,
        runtimePath: values["runtime-path"] ?? packagedShimPath(),
        kataConfigPath: values["kata-config"],
        handlerName: values.handler,
        shimLinkDir: values["shim-link-dir"] === "" ? undefined : (values["shim-link-dir"] ?? DEFAULT_SHIM_LINK_DIR),
      });
      const what = res.configChanged || res.dropInChanged ? "installed" : "already installed";
      process.stdout.write(`kata-ts handler ${what}: drop-in ${res.dropInPath}; restart containerd to apply\n`);
    } else {
      const res = await uninstallContainerdHandler(paths);
      process.stdout.write(`kata-ts handler removed (config.toml: ${res.config}); restart containerd to apply\n`);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`kata-ts containerd ${action}: ${describeError(err)}\n`);
    return 1;
  }
}
