// katats.agent.v1.Health: the host polls Check until SERVING to learn that the guest has booted.
import { readFile } from "node:fs/promises";
import { release } from "node:os";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import type { ServiceImpl } from "../protocol/ttrpc/index.js";
import { CheckResponse_ServingStatus, type Health } from "../protocol/gen/katats/agent/v1/health_pb.js";
import { uptimeSeconds } from "./log.js";
import { AGENT_VERSION } from "./version.js";

async function bootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "latin1").catch(() => "")).trim();
}

type HealthMethods = typeof Health extends GenService<infer S> ? S : never;

export function healthService(): ServiceImpl<HealthMethods> {
  return {
    check: () => Promise.resolve({ status: CheckResponse_ServingStatus.SERVING }),
    version: async () => ({
      agentVersion: AGENT_VERSION,
      kernelRelease: release(),
      uptimeSeconds: uptimeSeconds() ?? 0,
      bootId: await bootId(),
      nodeVersion: process.version,
    }),
  };
}
