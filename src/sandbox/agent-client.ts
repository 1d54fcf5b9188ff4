// The host's one translation point into the agent API: sandbox code speaks in its own types
// (OCI spec objects, Dates, Buffers) and this module turns them into katats.agent.v1 requests and
// the responses back. Nothing else in src/sandbox imports the generated agent types.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type TtrpcClient } from "../protocol/ttrpc/index.js";
import { AgentService } from "../protocol/gen/katats/agent/v1/agent_pb.js";
import { Health } from "../protocol/gen/katats/agent/v1/health_pb.js";
import type { OciProcess, OciSpec } from "../protocol/contract/oci.js";
import type { GuestInterface, GuestRoute } from "../protocol/contract/network.js";
import { fromProtoInterface, fromProtoRoute, toProtoInterface, toProtoRoute } from "../protocol/contract/network-proto.js";

export interface ExitStatus {
  status: number;
  exitedAt: Date;
}

export interface StreamChunk {
  data: Buffer;
  eof: boolean;
}

/** A host file copied into the guest with CreateContainer (copied-files.ts). */
export interface GuestFileSpec {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  data: Uint8Array;
}

export interface GuestMountSpec {
  source: string;
  target: string;
  fstype: string;
  options: string[];
}

/** What one idle reclaim of the agent did (reclaimIdleMemory). */
export interface AgentReclaim {
  agentBytesBefore: number;
  agentBytesAfter: number;
  swappedBytes: number;
  storedBytes: number;
}

const CALL_MS = 60_000;

export class AgentClient {
  private readonly agent;
  private readonly health;

  /** Wraps a connection whose agent already answered Health.Check (see bootVm in src/sandbox/agent-boot.ts). */
  constructor(private readonly ttrpc: TtrpcClient) {
    this.agent = createClient(ttrpc, AgentService);
    this.health = createClient(ttrpc, Health);
  }

  close(): void {
    this.ttrpc.close();
  }

  get closed(): Promise<void> {
    return this.ttrpc.closed;
  }

  /** One Health.Check within `timeoutMs` (the liveness probe: see pod-watch.ts). */
  async check(timeoutMs: number): Promise<void> {
    await this.health.check({}, { timeoutMs });
  }

  /** Why the connection ended (undefined while it is open): e.g. the guest broke the ttRPC protocol. */
  get closeReason(): string | undefined {
    return this.ttrpc.closeReason?.message;
  }

  async version(): Promise<{ bootId: string; kernelRelease: string; agentVersion: string }> {
    const v = await this.health.version({}, { timeoutMs: CALL_MS });
    return { bootId: v.bootId, kernelRelease: v.kernelRelease, agentVersion: v.agentVersion };
  }

  async createSandbox(s: { sandboxId: string; hostname: string; dns: string[]; sharedFsTag: string; entropy?: Uint8Array; sysctls?: Record<string, string> }): Promise<void> {
    await this.agent.createSandbox({ ...s, hostTime: timestampFromDate(new Date()) }, { timeoutMs: CALL_MS });
  }

  /** Pod-neutral set-up of a pooled VM (the clock, the empty share mounted, the network path warmed). */
  async prepareSandbox(sharedFsTag: string, timeoutMs = CALL_MS): Promise<void> {
    await this.agent.prepareSandbox({ sharedFsTag, hostTime: timestampFromDate(new Date()) }, { timeoutMs });
  }

  /** A prepared VM (TCG cache just emptied) rehearses a pod's path once more (the pool: docs/pool.md). */
  async rehearsePodPath(timeoutMs = CALL_MS): Promise<void> {
    await this.agent.prepareSandbox({ rehearse: true }, { timeoutMs });
  }

  async destroySandbox(): Promise<void> {
    await this.agent.destroySandbox({}, { timeoutMs: CALL_MS });
  }

  async createContainer(c: { containerId: string; spec: OciSpec; rootfs: string; mounts: GuestMountSpec[]; files?: GuestFileSpec[]; openStdin: boolean; sandboxPidns?: boolean }): Promise<number> {
    const res = await this.agent.createContainer(
      {
        containerId: c.containerId,
        ociSpecJson: JSON.stringify(c.spec),
        rootfs: c.rootfs,
        mounts: c.mounts,
        files: c.files ?? [],
        openStdin: c.openStdin,
        sandboxPidns: c.sandboxPidns ?? false,
      },
      { timeoutMs: CALL_MS },
    );
    return res.pid;
  }

  async startContainer(containerId: string): Promise<number> {
    return (await this.agent.startContainer({ containerId }, { timeoutMs: 2 * CALL_MS })).pid;
  }

  async removeContainer(containerId: string, force: boolean): Promise<void> {
    await this.agent.removeContainer({ containerId, force }, { timeoutMs: CALL_MS });
  }

  async exec(e: { containerId: string; execId: string; process: OciProcess; terminal: boolean; openStdin: boolean }): Promise<number> {
    const res = await this.agent.execProcess(
      { containerId: e.containerId, execId: e.execId, processJson: JSON.stringify(e.process), terminal: e.terminal, openStdin: e.openStdin },
      { timeoutMs: 2 * CALL_MS },
    );
    return res.pid;
  }

  async signal(containerId: string, execId: string, signal: number, all = false): Promise<void> {
    await this.agent.signalProcess({ containerId, execId, signal, all }, { timeoutMs: CALL_MS });
  }

  /**
   * Blocks until the process exits. No deadline of its own: it ends with the process, with `signal`,
   * or when the connection closes (the sandbox closes it when the VM dies or the agent is judged
   * dead, see pod-watch.ts). The same holds for `read` and `nextOom`.
   */
  async wait(containerId: string, execId: string, signal?: AbortSignal): Promise<ExitStatus> {
    const res = await this.agent.waitProcess({ containerId, execId }, signal ? { signal } : {});
    return { status: res.status, exitedAt: res.exitedAt ? timestampDate(res.exitedAt) : new Date() };
  }

  /** Long-polls one output stream: resolves with data, or with eof when the stream has ended. */
  async read(stream: "stdout" | "stderr", containerId: string, execId: string, len: number, signal?: AbortSignal): Promise<StreamChunk> {
    const req = { containerId, execId, len };
    const opts = signal ? { signal } : {};
    const res = stream === "stdout" ? await this.agent.readStdout(req, opts) : await this.agent.readStderr(req, opts);
    return { data: Buffer.from(res.data.buffer, res.data.byteOffset, res.data.byteLength), eof: res.eof };
  }

  async write(containerId: string, execId: string, data: Uint8Array): Promise<number> {
    return (await this.agent.writeStdin({ containerId, execId, data }, { timeoutMs: CALL_MS })).len;
  }

  async closeStdin(containerId: string, execId: string): Promise<void> {
    await this.agent.closeStdin({ containerId, execId }, { timeoutMs: CALL_MS });
  }

  async resize(containerId: string, execId: string, rows: number, cols: number): Promise<void> {
    await this.agent.ttyWinResize({ containerId, execId, row: rows, column: cols }, { timeoutMs: CALL_MS });
  }

  async stats(
    containerId: string,
  ): Promise<{ memoryUsage: bigint; memoryLimit: bigint; oomKills: bigint; cpuUsageUsec: bigint; cpuUserUsec: bigint; cpuSystemUsec: bigint; pids: bigint }> {
    const s = await this.agent.statsContainer({ containerId }, { timeoutMs: CALL_MS });
    return {
      memoryUsage: s.memory?.usage ?? 0n,
      memoryLimit: s.memory?.limit ?? 0n,
      oomKills: s.memory?.oomKillEvents ?? 0n,
      cpuUsageUsec: s.cpu?.usageUsec ?? 0n,
      cpuUserUsec: s.cpu?.userUsec ?? 0n,
      cpuSystemUsec: s.cpu?.systemUsec ?? 0n,
      pids: s.pids?.current ?? 0n,
    };
  }

  async pause(containerId: string): Promise<void> {
    await this.agent.pauseContainer({ containerId }, { timeoutMs: CALL_MS });
  }

  async resume(containerId: string): Promise<void> {
    await this.agent.resumeContainer({ containerId }, { timeoutMs: CALL_MS });
  }

  /** Guest pids of the container's processes. */
  async listProcesses(containerId: string): Promise<number[]> {
    return [...(await this.agent.listProcesses({ containerId }, { timeoutMs: CALL_MS })).pids];
  }

  async update(containerId: string, resources: Record<string, unknown>): Promise<void> {
    await this.agent.updateContainer({ containerId, resourcesJson: JSON.stringify(resources) }, { timeoutMs: CALL_MS });
  }

  /** Configures the guest NIC with this MAC (name, MTU, addresses); answers it as set. */
  async updateInterface(iface: GuestInterface): Promise<GuestInterface> {
    const res = await this.agent.updateInterface({ interface: toProtoInterface(iface) }, { timeoutMs: CALL_MS });
    return fromProtoInterface(res);
  }

  /** Makes the named guest devices' routes exactly these; answers the guest's routes on them. */
  async updateRoutes(routes: GuestRoute[]): Promise<GuestRoute[]> {
    const res = await this.agent.updateRoutes({ routes: { routes: routes.map(toProtoRoute) } }, { timeoutMs: CALL_MS });
    return res.routes.map(fromProtoRoute);
  }

  /** updateInterface for each, then updateRoutes, in one call; answers the NICs and routes as set. */
  async updateNetwork(interfaces: GuestInterface[], routes: GuestRoute[]): Promise<{ interfaces: GuestInterface[]; routes: GuestRoute[] }> {
    const res = await this.agent.updateNetwork({ interfaces: interfaces.map(toProtoInterface), routes: { routes: routes.map(toProtoRoute) } }, { timeoutMs: CALL_MS });
    return { interfaces: res.interfaces.map(fromProtoInterface), routes: (res.routes?.routes ?? []).map(fromProtoRoute) };
  }

  /**
   * The pod is idle: the agent compresses its own cold memory into the guest's zram swap
   * (ReclaimIdleMemory). Answers its cgroup's bytes before and after and what the zram device
   * holds and uses; FAILED_PRECONDITION from a guest without zram or an agent cgroup.
   */
  async reclaimIdleMemory(timeoutMs: number, signal?: AbortSignal): Promise<AgentReclaim> {
    const r = await this.agent.reclaimIdleMemory({}, { timeoutMs, ...(signal ? { signal } : {}) });
    return { agentBytesBefore: Number(r.agentBytesBefore), agentBytesAfter: Number(r.agentBytesAfter), swappedBytes: Number(r.swappedBytes), storedBytes: Number(r.storedBytes) };
  }

  /** Blocks until some container is OOM-killed; answers its id. */
  async nextOom(signal?: AbortSignal): Promise<string> {
    return (await this.agent.getOOMEvent({}, signal ? { signal } : {})).containerId;
  }
}
