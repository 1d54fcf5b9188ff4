// The test shim containerd-shim-katatsfault-v2 (runtime type io.containerd.katatsfault.v2): the
// production shim (VM pods, the pool, deferred adoption) whose adopter, after the real adoption,
// tells the guest to configure a NIC by a MAC no guest NIC has: the real agent refuses that
// UpdateNetwork ("no guest NIC has MAC ..."). The pod network's host side is held back
// `FAULT_DELAY_MS` (the deferred set-up fails only once both settled), so that the pod's
// CreateContainer and StartContainer are sure to be pending when it fails: a deferred adoption
// that fails after the sandbox task was reported started (test/e2e/pool.test.ts). Only the pool
// e2e puts it on its private containerd's PATH.
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { adoptPooledVm } from "../../src/pool/adopt.js";
import { runShim } from "../../src/shim/run.js";
import { vmPodFactoryWithCgroup } from "../../src/shim/sandbox-adapter.js";
import type { PooledVmAdopter } from "../../src/shim/vm-pod.js";

/** No NIC has it: locally administered, never a pool MAC (src/pool) or a CNI veth's. */
const ABSENT_MAC = "02:de:ad:00:be:ef";
const FAULT_DELAY_MS = 8000;

const refusedNetworkAdopter: PooledVmAdopter = (taken, log) => {
  const adopt = adoptPooledVm(taken, log);
  return async (ctx) => {
    const parts = await adopt(ctx);
    const view = parts.guestNetwork;
    if (view === undefined) return parts;
    const net = parts.net.then(async (n) => {
      await sleep(FAULT_DELAY_MS);
      return n;
    });
    net.catch(() => undefined); // handed over: the sandbox awaits it
    return { ...parts, net, guestNetwork: { ...view, interfaces: view.interfaces.map((i) => ({ ...i, currentMac: ABSENT_MAC })) } };
  };
};

void runShim(process.argv.slice(2), {
  serverScript: fileURLToPath(import.meta.url),
  loadPodFactory: async (log) => vmPodFactoryWithCgroup(log, refusedNetworkAdopter),
});
