// The agent's ttRPC server and the services it serves.
import { TtrpcServer } from "../protocol/ttrpc/index.js";
import { Health } from "../protocol/gen/katats/agent/v1/health_pb.js";
import { healthService } from "./health.js";
import { AgentService } from "../protocol/gen/katats/agent/v1/agent_pb.js";
import { agentService, defaultAgentDeps, type AgentServiceDeps } from "./container/service.js";

export function createAgentServer(deps: AgentServiceDeps = defaultAgentDeps()): TtrpcServer {
  const server = new TtrpcServer();
  server.register(Health, healthService());
  server.register(AgentService, agentService(deps));
  return server;
}
