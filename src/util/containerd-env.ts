// The environment a containerd that kata-ts starts itself (the dev environment's, the test
// harness's) hands to its shims. Every shim process is a Node process: `start` runs on every pod's
// and every container's start, the pool daemon and shim servers beside them.

/**
 * Variables a login shell may carry that make every Node start-up dearer and that no shim uses.
 * NODE_EXTRA_CA_CERTS: node 20 parses every certificate of that bundle while it starts, before any
 * JavaScript runs (~40 ms more CPU per start for Debian's ca-certificates bundle on this machine,
 * `node -e 0`: 60-70 against 20 ms); the shim makes no TLS connection. A node's own containerd
 * (systemd) does not have it; a containerd started from a developer's shell would.
 */
export const shimIrrelevantNodeEnv: readonly string[] = ["NODE_EXTRA_CA_CERTS"];

/** `env` without shimIrrelevantNodeEnv, for a containerd process kata-ts spawns. */
export function containerdEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of shimIrrelevantNodeEnv) delete out[name];
  return out;
}
