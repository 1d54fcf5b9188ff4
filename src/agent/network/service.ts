// UpdateInterface, UpdateRoutes and UpdateNetwork (both in one call): proto <-> the agent's network types (proto.ts), nothing else.
// Spread into the AgentService implementation (container/service.ts).
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import type { ServiceImpl } from "../../protocol/ttrpc/index.js";
import type { AgentService } from "../../protocol/gen/katats/agent/v1/agent_pb.js";
import { KataError } from "../../util/errors.js";
import { configureInterface } from "./interface.js";
import { fromProtoInterface, fromProtoRoute, toProtoInterface, toProtoRoute } from "../../protocol/contract/network-proto.js";
import { replaceRoutes } from "./routes.js";
import { configureNetwork } from "./network.js";

type AgentMethods = typeof AgentService extends GenService<infer S> ? S : never;
type NetworkMethods = Pick<ServiceImpl<AgentMethods>, "updateInterface" | "updateRoutes" | "updateNetwork">;

export function networkHandlers(): NetworkMethods {
  return {
    async updateInterface(req) {
      if (req.interface === undefined) throw new KataError("INVALID_ARGUMENT", "UpdateInterface needs an interface");
      return toProtoInterface(await configureInterface(fromProtoInterface(req.interface)));
    },
    async updateRoutes(req) {
      const routes = await replaceRoutes((req.routes?.routes ?? []).map(fromProtoRoute));
      return { routes: routes.map(toProtoRoute) };
    },
    async updateNetwork(req) {
      const net = await configureNetwork(req.interfaces.map(fromProtoInterface), (req.routes?.routes ?? []).map(fromProtoRoute));
      return { interfaces: net.interfaces.map(toProtoInterface), routes: { routes: net.routes.map(toProtoRoute) } };
    },
  };
}
