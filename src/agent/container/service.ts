// katats.agent.v1.AgentService: the edge where the agent proto meets the container manager. Only
// translation lives here (proto <-> internal types); behaviour is in manager.ts and sandbox-setup.ts.
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "../../protocol/ttrpc/index.js";
import type { AgentService, Mount } from "../../protocol/gen/katats/agent/v1/agent_pb.js";
import { KataError } from "../../util/errors.js";
import type { OciProcess } from "../../protocol/contract/oci.js";
import { GUEST_BLOCK_ROOT, GUEST_SHARED_DIR } from "../../protocol/contract/guest.js";
import { BUNDLE_ROOT, CGROUP_ROOT, CRUN_ROOT, POD_TMPFS_ROOT, RESOLV_CONF } from "./guest-layout.js";
import { ContainerManager, type ManagerConfig } from "./manager.js";
import { GuestSandbox, type GuestMount } from "./sandbox-setup.js";
import { checkGuestFiles, writeGuestFiles } from "./guest-files.js";
import { networkHandlers } from "../network/service.js";
import { warmAdoptionPaths } from "../adoption-warmup.js";
import { mixEntropy } from "../entropy.js";
import { IdleReclaimer } from "../idle-reclaim.js";

type AgentMethods = typeof AgentService extends GenService<infer S> ? S : never;

export interface AgentServiceDeps {
  manager: ContainerManager;
  sandbox: GuestSandbox;
  /**
   * The container warm-up (kata_ts.warm_up=containers, main.ts), run at most once and never
   * throwing: a pooled VM's PrepareSandbox answers only once it is over, so the pool offers a VM
   * only after its warm-up is gone and no pod ever shares a guest with it; after a CreateSandbox
   * (a VM booted with the parameter by hand) it runs in the background.
   */
  warmUp?: () => Promise<void>;
  /** PrepareSandbox's run of adoption's code (adoption-warmup.ts); replaceable in tests. */
  warmAdoption?: () => Promise<void>;
  /**
   * PrepareSandbox with `rehearse` (a prepared VM whose TCG cache the host just emptied): the pod
   * path once more (../pod-path-rehearsal.ts), throwing if any step or its undo fails.
   */
  rehearse?: () => Promise<void>;
  /** ReclaimIdleMemory's work (../idle-reclaim.ts); replaceable in tests. */
  idleReclaim?: Pick<IdleReclaimer, "reclaim">;
}

/** The guest's defaults: crun with cgroup v2, bundles on tmpfs, the share at GUEST_SHARED_DIR. */
export function guestManagerConfig(): ManagerConfig {
  return {
    crun: { path: "crun", root: CRUN_ROOT, cgroupManager: "cgroupfs" },
    tools: { script: "script", stty: "stty" },
    bundleRoot: BUNDLE_ROOT,
    cgroupRoot: CGROUP_ROOT,
    bindSourceRoots: [GUEST_SHARED_DIR],
    blockRoot: GUEST_BLOCK_ROOT,
    podTmpfsRoot: POD_TMPFS_ROOT,
    kernelLog: "/dev/kmsg",
    sharePins: { fuseConnections: "/sys/fs/fuse/connections" },
  };
}

export function defaultAgentDeps(): AgentServiceDeps {
  return {
    manager: new ContainerManager(guestManagerConfig()),
    sandbox: new GuestSandbox({ sharedDir: GUEST_SHARED_DIR, resolvConf: RESOLV_CONF, hostnameFile: "/proc/sys/kernel/hostname" }),
  };
}

function mounts(ms: Mount[]): GuestMount[] {
  return ms.map((m) => ({ source: m.source, target: m.target, fstype: m.fstype, options: [...m.options] }));
}

function parseProcess(json: string): OciProcess {
  try {
    return JSON.parse(json) as OciProcess;
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", "process_json is not valid JSON: send the OCI Process as JSON", { cause: err });
  }
}

export function agentService(deps: AgentServiceDeps = defaultAgentDeps()): ServiceImpl<AgentMethods> {
  const { manager, sandbox } = deps;
  return {
    async createSandbox(req) {
      // Host randomness first, before anything of the pod runs (see docs/pool.md for what it credits).
      if (req.entropy.length > 0) await mixEntropy(req.entropy);
      await sandbox.create({
        sandboxId: req.sandboxId,
        hostname: req.hostname,
        dns: [...req.dns],
        sharedFsTag: req.sharedFsTag,
        hostTime: req.hostTime ? timestampDate(req.hostTime) : undefined,
        mounts: mounts(req.mounts),
        sysctls: { ...req.sysctls },
      });
      void deps.warmUp?.();
      return {};
    },
    async prepareSandbox(req) {
      if (req.rehearse) {
        if (sandbox.prepared === undefined || sandbox.sandboxId !== undefined) throw new KataError("FAILED_PRECONDITION", "the pod path's rehearsal is for a prepared VM that no pod has yet: call PrepareSandbox without rehearse first");
        if (deps.rehearse === undefined) throw new KataError("UNIMPLEMENTED", "this agent cannot rehearse the pod path");
        await deps.rehearse();
        return {};
      }
      await sandbox.prepare({ hostTime: req.hostTime ? timestampDate(req.hostTime) : undefined, sharedFsTag: req.sharedFsTag });
      // Adoption's code (CreateSandbox's, UpdateNetwork's and its `ip -batch`) run once on
      // pod-neutral data, so a pod finds it compiled and paged in (docs/pool.md). Before the
      // container warm-up: run last, its translations overflowed TCG's 40 MiB cache at the very end
      // on a quiet host, so the pod met an empty cache (adoption 120 vs 40 ms QEMU CPU, quiet A/B,
      // docs/pool.md "Adoption's warm-up: first again").
      await (deps.warmAdoption ?? warmAdoptionPaths)();
      await deps.warmUp?.();
      return {};
    },
    async destroySandbox() {
      await manager.removeAll();
      await sandbox.destroy();
      return {};
    },
    async createContainer(req) {
      const guestMounts = mounts(req.mounts);
      checkGuestFiles(req.containerId, req.files, guestMounts.map((m) => m.target));
      await sandbox.mountForContainer(req.containerId, guestMounts);
      try {
        await writeGuestFiles(req.containerId, req.files);
        return await manager.createContainer({
          containerId: req.containerId,
          specJson: req.ociSpecJson,
          rootfs: req.rootfs,
          openStdin: req.openStdin,
          sandboxPidns: req.sandboxPidns,
          sandboxId: sandbox.sandboxId,
        });
      } catch (err) {
        await sandbox.unmountContainer(req.containerId).catch(() => undefined);
        throw err;
      }
    },
    startContainer: (req, ctx) => manager.startContainer(req.containerId, ctx.deadline),
    async removeContainer(req) {
      await manager.removeContainer(req.containerId, req.force);
      await sandbox.unmountContainer(req.containerId);
      return {};
    },
    async updateContainer(req) {
      await manager.updateContainer(req.containerId, req.resourcesJson);
      return {};
    },
    async pauseContainer(req) {
      await manager.pauseContainer(req.containerId);
      return {};
    },
    async resumeContainer(req) {
      await manager.resumeContainer(req.containerId);
      return {};
    },
    async listProcesses(req) {
      return { pids: await manager.listProcesses(req.containerId) };
    },
    async statsContainer(req) {
      const s = await manager.stats(req.containerId);
      return { cpu: s.cpu, memory: s.memory, pids: s.pids, timestamp: timestampFromDate(s.timestamp) };
    },
    execProcess: (req, ctx) =>
      manager.execProcess({
        deadline: ctx.deadline,
        containerId: req.containerId,
        execId: req.execId,
        process: parseProcess(req.processJson),
        terminal: req.terminal,
        openStdin: req.openStdin,
      }),
    async signalProcess(req) {
      await manager.signalProcess(req.containerId, req.execId, req.signal, req.all);
      return {};
    },
    async waitProcess(req, ctx) {
      const e = await manager.waitProcess(req.containerId, req.execId, ctx.signal);
      return { status: e.status, exitedAt: timestampFromDate(e.exitedAt) };
    },
    readStdout: (req, ctx) => manager.readStdout(req.containerId, req.execId, req.len, ctx.signal),
    readStderr: (req, ctx) => manager.readStderr(req.containerId, req.execId, req.len, ctx.signal),
    async writeStdin(req) {
      return { len: await manager.writeStdin(req.containerId, req.execId, req.data) };
    },
    closeStdin(req) {
      manager.closeStdin(req.containerId, req.execId);
      return Promise.resolve({});
    },
    async ttyWinResize(req) {
      await manager.resize(req.containerId, req.execId, req.row, req.column);
      return {};
    },
    async getOOMEvent(_req, ctx) {
      return { containerId: await manager.nextOomEvent(ctx.signal) };
    },
    async reclaimIdleMemory() {
      const r = await (deps.idleReclaim ??= new IdleReclaimer()).reclaim();
      return { agentBytesBefore: r.agentBytesBefore, agentBytesAfter: r.agentBytesAfter, swappedBytes: r.swappedBytes, storedBytes: r.storedBytes };
    },
    ...networkHandlers(),
  };
}
