// The kata-ts command: one module per verb under ./commands, loaded only when used so that a
// quick verb never pays for the imports of a slow one.
import { describeError, isKataError } from "../util/errors.js";

interface Verb {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<number> }>;
}

const verbs: Record<string, Verb> = {
  setup: { summary: "install everything kata-ts and its tests need on this Debian host", load: () => import("./commands/setup.js") },
  run: { summary: "run one container in a fresh VM: run --rootfs DIR -- CMD, or run --bundle DIR", load: () => import("./commands/run.js") },
  pool: { summary: "the node's pool of pre-booted VMs: pool serve|status|stop (docs/pool.md)", load: () => import("./commands/pool.js") },
  check: { summary: "report what this host can do (QEMU, KVM, virtiofsd, containerd, CNI, ...)", load: () => import("./commands/check.js") },
  tenancy: { summary: "tenant policy -> namespaces, quotas, network policies, admission webhook, EMCO placement", load: () => import("./commands/tenancy.js") },
  containerd: { summary: "add/remove the kata-ts runtime handler in containerd's config.toml (containerd install|uninstall)", load: () => import("./commands/containerd.js") },
  install: { summary: "install kata-ts on this node (/opt/kata-ts, containerd handler, containerd restart)", load: () => import("./commands/install.js") },
  uninstall: { summary: "remove kata-ts from this node (restores containerd's config.toml byte for byte)", load: () => import("./commands/uninstall.js") },
  manifests: { summary: "print the Kubernetes manifests: RuntimeClass kata-ts, installer DaemonSet, cleanup, examples", load: () => import("./commands/manifests.js") },
  demo: { summary: "see it work: a runc pod and a kata-ts pod side by side, each pod's kernel next to the host's", load: () => import("./commands/demo.js") },
  "build-assets": { summary: "build the guest kernel, initramfs and rootfs image (kata-ts build-assets --if-stale to refresh only)", load: () => import("./commands/build-assets.js") },
  "build-installer-image": { summary: "write the installer DaemonSet's image (node, kubectl, kata-ts, guest assets) as an OCI archive for ctr import", load: () => import("./commands/build-installer-image.js") },
};

function usage(): string {
  const width = Math.max(...Object.keys(verbs).map((v) => v.length));
  const lines = Object.entries(verbs).map(([name, v]) => `  ${name.padEnd(width)}  ${v.summary}`);
  return `usage: kata-ts <command> [options]\n\ncommands:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const verb = verbs[name];
  if (verb === undefined) {
    process.stderr.write(`kata-ts: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const mod = await verb.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`kata-ts: ${describeError(err)}\n`);
    process.exitCode = isKataError(err, "INVALID_ARGUMENT") ? 2 : 1;
  },
);
