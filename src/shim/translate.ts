// The ONE place where containerd's task API (generated protobuf types) meets the shim's internal
// types: requests are translated into TaskService calls, results back into responses. Errors are
// KataErrors; the ttRPC library maps their codes to gRPC status codes.
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import { timestampFromDate, type Any } from "@bufbuild/protobuf/wkt";
import { MetricsSchema } from "../protocol/gen/io/containerd/cgroups/v2/metrics_pb.js";
import type { Task } from "../protocol/gen/containerd/task/v2/shim_pb.js";
import { Status } from "../protocol/gen/containerd/types/task/task_pb.js";
import type { Mount, MountSchema } from "../protocol/gen/containerd/types/mount_pb.js";
import type { ServiceImpl } from "../protocol/ttrpc/index.js";
import { KataError } from "../util/errors.js";
import type { ContainerStats, OciProcess, RootfsMount } from "./pod-port.js";
import type { ProcessStatus } from "./process-state.js";
import { decodeRuntimeOptions } from "./runtime-options.js";
import type { TaskService } from "./task-service.js";

type TaskMethods = typeof Task extends GenService<infer M> ? M : never;

const processSpecType = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const metricsType = "io.containerd.cgroups.v2.Metrics";
export const shimVersion = "kata-ts-shim v2";

export interface ShimControl {
  /** Shutdown was requested and no containers remain: exit the shim. */
  shutdown(): void;
}

export function taskImpl(svc: TaskService, control: ShimControl): ServiceImpl<TaskMethods> {
  return {
    async create(r) {
      const pid = await svc.create({
        id: r.id,
        bundle: r.bundle,
        rootfs: r.rootfs.map(fromMount),
        stdio: { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal },
        configPath: decodeRuntimeOptions(r.options).configPath,
      });
      return { pid };
    },
    async start(r) {
      return { pid: await svc.start({ containerId: r.id, execId: r.execId }) };
    },
    async delete(r) {
      const { pid, exit } = await svc.delete({ containerId: r.id, execId: r.execId });
      return { pid, exitStatus: exit.exitStatus, exitedAt: timestampFromDate(exit.exitedAt) };
    },
    async exec(r) {
      await svc.exec({
        containerId: r.id,
        execId: r.execId,
        process: jsonAny<OciProcess>(r.spec, "exec spec", processSpecType),
        stdio: { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal },
      });
      return {};
    },
    async state(r) {
      const info = svc.state({ containerId: r.id, execId: r.execId });
      return {
        id: info.execId === "" ? info.containerId : info.execId,
        execId: info.execId,
        bundle: info.bundle,
        pid: info.pid,
        status: toStatus(info.status),
        stdin: info.stdio.stdin,
        stdout: info.stdio.stdout,
        stderr: info.stdio.stderr,
        terminal: info.stdio.terminal,
        exitStatus: info.exit?.exitStatus ?? 0,
        exitedAt: info.exit === undefined ? undefined : timestampFromDate(info.exit.exitedAt),
      };
    },
    async kill(r) {
      await svc.kill({ containerId: r.id, execId: r.execId }, r.signal, r.all);
      return {};
    },
    async wait(r) {
      const exit = await svc.wait({ containerId: r.id, execId: r.execId });
      return { exitStatus: exit.exitStatus, exitedAt: timestampFromDate(exit.exitedAt) };
    },
    async pids(r) {
      const pids = await svc.pids(r.id);
      return { processes: pids.map((pid) => ({ pid })) };
    },
    async closeIO(r) {
      await svc.closeIO({ containerId: r.id, execId: r.execId }, r.stdin);
      return {};
    },
    async resizePty(r) {
      await svc.resizePty({ containerId: r.id, execId: r.execId }, r.width, r.height);
      return {};
    },
    async update(r) {
      await svc.update(r.id, jsonAny<Record<string, unknown>>(r.resources, "resources"));
      return {};
    },
    async stats(r) {
      return { stats: toMetrics(await svc.stats(r.id)) };
    },
    async connect(r) {
      return { shimPid: process.pid, taskPid: svc.taskPid(r.id), version: shimVersion };
    },
    async shutdown() {
      // containerd sends Shutdown after each task Delete; the shim stays while it holds containers.
      svc.requestShutdown(() => control.shutdown());
      return {};
    },
    async pause(r) {
      await svc.pause(r.id);
      return {};
    },
    async resume(r) {
      await svc.resume(r.id);
      return {};
    },
    async checkpoint() {
      throw new KataError("UNIMPLEMENTED", "kata-ts does not support checkpointing tasks");
    },
  };
}

export function fromMount(m: Mount): RootfsMount {
  return { type: m.type, source: m.source, target: m.target, options: [...m.options] };
}

export function toMount(m: RootfsMount): MessageInitShape<typeof MountSchema> {
  return { type: m.type, source: m.source, target: m.target, options: m.options };
}

const statusMap: Record<ProcessStatus, Status> = {
  creating: Status.UNKNOWN,
  created: Status.CREATED,
  running: Status.RUNNING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
  deleted: Status.STOPPED,
};

function toStatus(s: ProcessStatus): Status {
  return statusMap[s];
}

/** An Any holding JSON (containerd's typeurl encoding of OCI structs). */
function jsonAny<T>(any: Any | undefined, what: string, expectType?: string): T {
  if (any === undefined) throw new KataError("INVALID_ARGUMENT", `${what} is missing`);
  if (expectType !== undefined && any.typeUrl !== expectType) {
    throw new KataError("INVALID_ARGUMENT", `${what} has type ${any.typeUrl}, expected ${expectType}`);
  }
  try {
    return JSON.parse(Buffer.from(any.value).toString("utf8")) as T;
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", `${what} (${any.typeUrl}) is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

function u64(n: number | undefined): bigint {
  return n === undefined || !Number.isFinite(n) || n < 0 ? 0n : BigInt(Math.trunc(n));
}

/** Container stats as cgroup v2 Metrics, the type the CRI plugin decodes for v2 hosts. */
export function toMetrics(s: ContainerStats): Any {
  const metrics = create(MetricsSchema, {
    cpu: { usageUsec: u64(s.cpuUsageUsec), userUsec: u64(s.cpuUserUsec), systemUsec: u64(s.cpuSystemUsec) },
    memory: { usage: u64(s.memoryUsageBytes), usageLimit: u64(s.memoryLimitBytes) },
    pids: { current: u64(s.pidsCurrent) },
    memoryEvents: { oomKill: u64(s.oomKills) },
  });
  return { $typeName: "google.protobuf.Any", typeUrl: metricsType, value: toBinary(MetricsSchema, metrics) };
}
