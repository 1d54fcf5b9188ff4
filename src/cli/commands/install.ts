// kata-ts install: put kata-ts on this node (/opt/kata-ts), register the kata-ts CRI handler with
// containerd and restart it where systemd runs it. Logic: src/deploy/node-install.ts.
import { parseArgs } from "node:util";
import { installNode, nodeDefaults } from "../../deploy/node-install.js";
import { RESTART_MODES, type RestartMode } from "../../deploy/node-install-restart.js";
import { describeError } from "../../util/errors.js";
import { defaultConfig, loadConfig } from "../../config/index.js";
import { configuredPoolReservation } from "../../pool/reservation.js";

const d = nodeDefaults();
const USAGE = `usage: kata-ts install [--root DIR] [--config PATH] [--drop-in PATH] [--shim-link-dir DIR] [--handler NAME] [--restart auto|host|never]
  --root           install root (default ${d.root})
  --config         containerd config.toml (default ${d.containerdConfigPath})
  --drop-in        drop-in file (default <config dir>/kata-ts/cri-runtime.toml)
  --shim-link-dir  dir on containerd's PATH to link containerd-shim-kata-ts-v2 into (default ${d.shimLinkDir}; "" for none)
  --handler        CRI runtime handler name (default ${d.handlerName})
  --restart        auto: restart containerd if systemd runs it; host: the same through PID 1's
                   namespaces (installer DaemonSet); never: only print what to do (default auto)
`;

export const installFlags = {
  root: { type: "string" },
  config: { type: "string" },
  "drop-in": { type: "string" },
  restart: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export function parseRestart(v: string | undefined): RestartMode {
  if (v === undefined) return "auto";
  if (!(RESTART_MODES as readonly string[]).includes(v)) throw new Error(`--restart must be one of ${RESTART_MODES.join(", ")}, not "${v}"`);
  return v as RestartMode;
}

export async function run(argv: string[]): Promise<number> {
  let values;
  let restart;
  try {
    ({ values } = parseArgs({ args: argv, options: { ...installFlags, "shim-link-dir": { type: "string" }, handler: { type: "string" } } }));
    restart = parseRestart(values.restart);
  } catch (err) {
    process.stderr.write(`kata-ts install: ${describeError(err)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const linkDir = values["shim-link-dir"] ?? d.shimLinkDir;
    const res = await installNode({
      root: values.root,
      containerdConfigPath: values.config,
      dropInPath: values["drop-in"],
      shimLinkDir: linkDir === "" ? undefined : linkDir,
      handlerName: values.handler,
      restart,
    });
    const what = res.artifactsChanged || res.containerdConfigChanged ? "installed" : "already installed";
    process.stdout.write(`kata-ts ${what} in ${res.root} (shim ${res.shimPath}, config ${res.configPath})\n${res.restart.message}\n`);
    process.stdout.write(`node memory: ${await poolNote()}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`kata-ts install: ${describeError(err)}\n`);
    return 1;
  }
}

/** How much node memory the VM pool holds and where it belongs (kubelet's systemReserved; docs/install.md). */
async function poolNote(): Promise<string> {
  const { config } = await loadConfig().catch(() => ({ config: defaultConfig() }));
  return configuredPoolReservation(config.factory).text;
}
