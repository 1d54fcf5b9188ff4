// The kata-ts guest agent: PID 1's only child in the VM. Serves ttRPC to the host over the
// virtio-serial port named agent.0. Bundled into one CommonJS file for the guest image
// (src/guest/agent-bundle.ts); start-up cost matters, so imports here stay few and eager work small.
import { TtrpcServer } from "../protocol/ttrpc/index.js";
import { Health } from "../protocol/gen/katats/agent/v1/health_pb.js";
import { describeError } from "../util/errors.js";
import { healthService } from "./health.js";
import { log, uptimeSeconds } from "./log.js";
import { AGENT_VERSION } from "./version.js";
import { VirtioPort, waitForVirtioPort } from "./virtio-port.js";
import { vsockPresent } from "./vsock.js";
import { AgentService } from "../protocol/gen/katats/agent/v1/agent_pb.js";
import { agentService } from "./container/service.js";

export const AGENT_PORT_NAME = "agent.0";

export function createAgentServer(): TtrpcServer {
  const server = new TtrpcServer();
  server.register(Health, healthService());
  server.register(AgentService, agentService());
  return server;
}

async function main(): Promise<void> {
  const startedAt = uptimeSeconds();
  const server = createAgentServer();
  const path = await waitForVirtioPort(AGENT_PORT_NAME, 10_000);
  const port = new VirtioPort(path);
  if (vsockPresent()) log("vsock device present; this agent serves the virtio-serial port only");
  log(`kata-ts agent ${AGENT_VERSION} (node ${process.version}) ready on ${path}; node started at ${startedAt?.toFixed(2) ?? "?"}s`);
  await port.serve((stream) => server.serve(stream));
}

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
