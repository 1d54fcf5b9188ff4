// kata-ts uninstall: remove the kata-ts CRI handler from containerd's config (restoring the
// original file byte for byte when nobody edited it since install) and delete /opt/kata-ts.
import { parseArgs } from "node:util";
import { nodeDefaults, uninstallNode } from "../../deploy/node-install.js";
import { describeError } from "../../util/errors.js";
import { stopPool } from "../../pool/stop.js";
import { installFlags, parseRestart } from "./install.js";

const d = nodeDefaults();
const USAGE = `usage: kata-ts uninstall [--root DIR] [--config PATH] [--drop-in PATH] [--restart auto|host|never]
  --root     install root (default ${d.root})
  --config   containerd config.toml (default ${d.containerdConfigPath})
  --drop-in  drop-in file (default <config dir>/kata-ts/cri-runtime.toml)
  --restart  as for kata-ts install (default auto)
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  let restart;
  try {
    ({ values } = parseArgs({ args: argv, options: installFlags }));
    restart = parseRestart(values.restart);
  } catch (err) {
    process.stderr.write(`kata-ts uninstall: ${describeError(err)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    // The VM pool daemon the shims started (docs/pool.md): its pooled VMs go with it.
    const pool = await stopPool().catch((err: unknown) => `not stopped: ${describeError(err)}`);
    if (pool === "stopped") process.stdout.write("kata-ts uninstall: stopped the VM pool\n");
    else if (pool !== "none") process.stderr.write(`kata-ts uninstall: VM pool ${pool}\n`);
    const res = await uninstallNode({
      root: values.root,
      containerdConfigPath: values.config,
      dropInPath: values["drop-in"],
      restart,
    });
    const tree = res.artifactsRemoved ? `removed ${res.root}` : `${res.root} was not there`;
    process.stdout.write(`kata-ts uninstalled: ${tree}; containerd config ${res.containerdConfig}\n${res.restart.message}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`kata-ts uninstall: ${describeError(err)}\n`);
    return 1;
  }
}
