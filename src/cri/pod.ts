// Small helpers over the CRI client for what kubelet does around the raw calls: build a pod
// sandbox config, wait for a container state, read a CRI log file.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import type { CriClient } from "./client.js";
import { ContainerState, type LinuxContainerResourcesSchema, type NamespaceOptionSchema, type PodSandboxConfigSchema } from "./gen/runtime/v1/api_pb.js";

export { ContainerState, PodSandboxState } from "./gen/runtime/v1/api_pb.js";

export interface PodSpecInput {
  name: string;
  namespace?: string;
  uid?: string;
  /** Host dir where the CRI plugin writes container logs (kubelet: /var/log/pods/<ns>_<name>_<uid>). */
  logDirectory: string;
  hostname?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  cgroupParent?: string;
  /** A pod that may run privileged containers (kubelet sets this when any container is). */
  privileged?: boolean;
  /** The pod's summed container limits, as kubelet (1.23+) sends them on the sandbox config. */
  resources?: MessageInitShape<typeof LinuxContainerResourcesSchema>;
  /** Default: CRI's zero values (every namespace the pod's, PID included: shareProcessNamespace). */
  namespaceOptions?: MessageInitShape<typeof NamespaceOptionSchema>;
}

export type PodSandboxConfigInit = MessageInitShape<typeof PodSandboxConfigSchema>;

export function podSandboxConfig(p: PodSpecInput): PodSandboxConfigInit {
  const namespace = p.namespace ?? "default";
  const uid = p.uid ?? `${namespace}-${p.name}`;
  return {
    metadata: { name: p.name, namespace, uid, attempt: 0 },
    hostname: p.hostname ?? p.name,
    logDirectory: p.logDirectory,
    labels: { "io.kubernetes.pod.name": p.name, "io.kubernetes.pod.namespace": namespace, ...p.labels },
    annotations: p.annotations ?? {},
    linux: {
      cgroupParent: p.cgroupParent ?? "",
      securityContext: { namespaceOptions: p.namespaceOptions ?? {}, privileged: p.privileged ?? false },
      ...(p.resources === undefined ? {} : { resources: p.resources }),
    },
  };
}

/** Poll ContainerStatus until the container reaches `state`; returns that status. */
export async function waitForContainerState(
  cri: CriClient,
  containerId: string,
  state: ContainerState,
  opts: { timeoutMs?: number; pollMs?: number } = {},
): Promise<NonNullable<Awaited<ReturnType<CriClient["runtime"]["containerStatus"]>>["status"]>> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last: ContainerState | undefined;
  for (;;) {
    const { status } = await cri.runtime.containerStatus({ containerId });
    if (status && status.state === state) return status;
    last = status?.state;
    if (Date.now() > deadline) {
      throw new KataError(
        "DEADLINE_EXCEEDED",
        `container ${containerId} did not reach ${ContainerState[state]} within ${timeoutMs} ms (last state ${last === undefined ? "unknown" : ContainerState[last]})`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}

export interface CriLogLine {
  time: string;
  stream: "stdout" | "stderr";
  /** False for a partial line (P tag): the text continues in the next entry. */
  full: boolean;
  text: string;
}

/** Parse the CRI log format: `<RFC3339Nano> <stream> <P|F> <text>` per line. */
export function parseCriLog(content: string): CriLogLine[] {
  const out: CriLogLine[] = [];
  for (const line of content.split("\n")) {
    if (line === "") continue;
    const m = /^(\S+) (stdout|stderr) ([PF]) ?(.*)$/.exec(line);
    if (!m) throw new KataError("INVALID_ARGUMENT", `not a CRI log line: ${JSON.stringify(line)}`);
    out.push({ time: m[1] as string, stream: m[2] as "stdout" | "stderr", full: m[3] === "F", text: m[4] as string });
  }
  return out;
}

/** The text a container wrote to one stream (or both), with partial lines re-joined. */
export async function readCriLog(logDirectory: string, logPath: string, stream?: "stdout" | "stderr"): Promise<string> {
  const lines = parseCriLog(await readFile(join(logDirectory, logPath), "utf8"));
  return lines
    .filter((l) => stream === undefined || l.stream === stream)
    .map((l) => (l.full ? `${l.text}\n` : l.text))
    .join("");
}
