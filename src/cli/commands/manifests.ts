// kata-ts manifests [set]: print the Kubernetes objects for kata-ts as YAML (kubectl apply -f -).
import { parseArgs } from "node:util";
import { MANIFEST_SETS, DEFAULT_INSTALLER_IMAGE, manifests, toYaml, type ManifestSet } from "../../deploy/manifests/index.js";
import { describeError } from "../../util/errors.js";

const USAGE = `usage: kata-ts manifests [${MANIFEST_SETS.join("|")}] [--image IMAGE]
  runtimeclass  RuntimeClass kata-ts (handler kata-ts, node selector, measured PodOverhead)
  installer     ServiceAccount, ClusterRole(+Binding), DaemonSet kata-ts-deploy (installs, labels nodes)
  cleanup       DaemonSet kata-ts-cleanup (unlabels nodes, uninstalls; apply after deleting kata-ts-deploy)
  examples      a trusted pod on runc and an untrusted pod on kata-ts
  all           installer + runtimeclass (default)
  --image       installer image (default ${DEFAULT_INSTALLER_IMAGE})
`;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { image: { type: "string" }, help: { type: "boolean", short: "h" } } });
  } catch (err) {
    process.stderr.write(`kata-ts manifests: ${describeError(err)}\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const set = (parsed.positionals[0] ?? "all") as ManifestSet;
  if (!MANIFEST_SETS.includes(set) || parsed.positionals.length > 1) {
    process.stderr.write(`kata-ts manifests: unknown set "${parsed.positionals.join(" ")}"\n${USAGE}`);
    return 2;
  }
  process.stdout.write(toYaml(manifests(set, { image: parsed.values.image })));
  return 0;
}
