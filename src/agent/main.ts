// The kata-ts guest agent: PID 1's only child in the VM. Serves ttRPC to the host over the
// virtio-serial port named agent.0, or on vsock through a bridge (vsock-bridge.ts) when the VM
// offers only vsock (kernel parameter kata_ts.agent=vsock:<port>). Bundled into one CommonJS file
// for the guest image (src/guest/agent-bundle.ts) and, at image build time, loaded into a V8
// startup snapshot: all module evaluation happens then, and the guest only deserializes the heap
// and runs main().
// This file has no exports on purpose: the snapshot builder runs it as a plain script.
// Module-level code anywhere in the agent runs at IMAGE BUILD time and is frozen into every guest:
// keep module scope to constants; read the machine, clock or randomness only from main() onward.
import diagnostics from "node:diagnostics_channel";
import { startupSnapshot } from "node:v8";
import { CLIENT_CALL_CHANNEL, SERVER_CALL_CHANNEL } from "../protocol/ttrpc/diagnostics.js";
import { describeError } from "../util/errors.js";
import { releaseBootMemory } from "./boot-memory.js";
import { afterFirstCall } from "./after-first-call.js";
import { log } from "./log.js";
import { createAgentServer } from "./server.js"; // AgentService (container engineer) is registered there
import { defaultAgentDeps } from "./container/service.js";
import { warmUpInBackground } from "./container/warm-up.js";
import { rehearsePodPath } from "./pod-path-rehearsal.js";
import { AGENT_VERSION } from "./version.js";
import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { agentChannelFromCmdline, wantsContainerWarmUp } from "../protocol/contract/guest.js";
import { VirtioPort, waitForVirtioPort } from "./virtio-port.js";
import { serveOverBridge, vsockListenAddress } from "./vsock-bridge.js";
import { vsockPresent } from "./vsock.js";
import { warmUpFirstRequest, warmUpStartPath } from "./warmup.js";
import { reportMemoryLater } from "./memory-report.js";


// node holds diagnostics channels weakly. One that no live code references (the bundle drops
// unused bindings) dies in the snapshot builder's final GC and leaves a FinalizationRegistry
// dirty, which aborts node 20's snapshot serializer. A global reference keeps them alive.
(globalThis as { kataTsAgentChannels?: unknown }).kataTsAgentChannels = [SERVER_CALL_CHANNEL, CLIENT_CALL_CHANNEL].map((name) =>
  diagnostics.channel(name),
);

async function main(): Promise<void> {
  log(`kata-ts agent ${AGENT_VERSION} starting (node ${process.version}; ${nodeStartPhases()})`);
  const deps = defaultAgentDeps();
  const server = createAgentServer(deps);
  // The VMM driver names the channel it offers on the kernel command line (virtio-serial by default).
  const cmdline = await readFile("/proc/cmdline", "utf8");
  // A VM booted ahead of its pod (kata_ts.warm_up=containers): the container warm-up, run by the
  // host's set-up call (the pool's PrepareSandbox answers after it, service.ts) once the boot page
  // cache is dropped, so that what the warm-up reads stays. Not from start-up on: beside
  // PrepareSandbox it took the guest's one vCPU from it, and a pooled VM at nice 19 on a busy host
  // then took minutes to be ready.
  let released: Promise<void> = Promise.resolve();
  let warming: Promise<void> | undefined;
  if (wantsContainerWarmUp(cmdline)) deps.warmUp = () => (warming ??= released.then(() => warmUpInBackground(server, log)));
  // The pool's second PrepareSandbox, after it emptied TCG's cache (pod-path-rehearsal.ts).
  deps.rehearse = () => rehearsePodPath(server, log);
  const channel = agentChannelFromCmdline(cmdline);
  if (channel.kind === "vsock") {
    if (!vsockPresent()) log("kernel parameter asks for vsock, but no virtio vsock device is bound: no host connection can reach the bridge");
    const bridged = await serveOverBridge((sock) => server.serve(sock), { listen: vsockListenAddress(channel.port), log });
    log(`kata-ts agent ${AGENT_VERSION} (node ${process.version}) ready on vsock port ${channel.port} (bridge pid ${bridged.bridgePid})`);
    released = afterFirstCall(() => releaseBootMemory(log), 2000);
    void reportMemoryLater(cmdline, log);
    await bridged.ended;
    return;
  }
  const path = await waitForVirtioPort(channel.portName, 10_000);
  const port = new VirtioPort(path);
  log(`kata-ts agent ${AGENT_VERSION} (node ${process.version}) ready on ${path}`);
  // Not awaited, and only once the first call is answered (or 2 s passed): dropping the boot page
  // cache takes the one vCPU for ~0.15 s under TCG, which delayed the host's first Health.Check.
  released = afterFirstCall(() => releaseBootMemory(log), 2000);
  void reportMemoryLater(cmdline, log);
  await port.serve((stream) => server.serve(stream));
}

/**
 * Where node's own start went: performance.nodeTiming's milestones in ms since the process's time
 * origin (node's C++ main, V8 initialized, the environment deserialized from the snapshot) and when
 * main() ran; the gap before main is node's pre-execution JavaScript. docs/guest.md reads them.
 */
function nodeStartPhases(): string {
  const t = performance.nodeTiming;
  return `phases ms: node ${t.nodeStart.toFixed(0)} v8 ${t.v8Start.toFixed(0)} env ${t.environment.toFixed(0)} main ${performance.now().toFixed(0)}`;
}

function run(): void {
  main().then(
    () => {
      log("agent channel closed");
      process.exitCode = 1;
    },
    (err: unknown) => {
      log(`fatal: ${describeError(err)}`);
      process.exitCode = 1;
    },
  );
}

if (startupSnapshot.isBuildingSnapshot()) {
  startupSnapshot.setDeserializeMainFunction(run);
  // The builder runs the event loop until it is empty before it serializes the heap.
  const server = createAgentServer();
  warmUpFirstRequest(server)
    .then((request) => warmUpStartPath(server, request, log))
    .catch((err: unknown) => log(`snapshot warm-up failed: ${describeError(err)}`));
} else {
  run();
}
