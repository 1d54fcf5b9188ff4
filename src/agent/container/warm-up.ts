// A container's first start in a fresh guest costs several times a later one under TCG: crun, its
// ten libraries and the kernel's namespace, mount and cgroup paths are met for the first time
// (their pages read from the image, their code translated by TCG, which finds it again later at the
// same addresses: the agent and its crun run without address-space randomization), and the
// agent's own start and exec code is compiled by V8. warmUpContainers runs that path once with
// nothing of a pod: a container of the guest's own read-only root (its busybox) is created, started,
// exec'd into once and removed, through the agent's own ttRPC service (the host's calls' whole path:
// framing, protobuf, AgentService, the manager, crun). The agent runs it when the kernel command
// line asks (kata_ts.warm_up=containers, which the pool sets on the VMs it boots ahead of their
// pods: [factory] warm_up_containers) within the pool's PrepareSandbox, which answers only once it
// is over: the pool offers the VM only then, so no pod ever shares a guest with the warm-up, and
// the pod's first container and exec find the path warm. It runs only the image's own binaries,
// so a pooled VM has still run no one's code. It costs the guest the CPU of one container start
// and exec, and a few MiB of page cache (docs/containers.md).
import { mkdir, rmdir } from "node:fs/promises";
import { describeError, KataError } from "../../util/errors.js";
import { run } from "../../util/exec.js";
import { defaultContainerMounts, defaultMaskedPaths, defaultReadonlyPaths, type OciSpec } from "../../protocol/contract/oci.js";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import { AgentService } from "../../protocol/gen/katats/agent/v1/agent_pb.js";
import { createClient, TtrpcClient, type TtrpcServer, type TypedClient } from "../../protocol/ttrpc/index.js";
import { pipePair } from "../pipe-pair.js";

/** The warm-up container's id: never a CRI id (those are 64 hex digits), and gone before any pod's. */
export const WARM_UP_ID = "kata-ts-warm-up";

/** Where the guest root is bound (without its submounts) as the warm-up container's rootfs. */
export const WARM_UP_ROOTFS = "/run/kata-ts/warm-up-rootfs";

const CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE"];

/** What a pod's container spec looks like to crun (containerd's defaults), with the guest root as rootfs. */
export function warmUpSpec(): OciSpec {
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ["sleep", "600"],
      env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
      cwd: "/",
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "kata-ts-warm-up",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      ...defaultContainerMounts.map((m) => ({ ...m, options: [...(m.options ?? [])] })),
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "cgroup" }],
      maskedPaths: [...defaultMaskedPaths],
      readonlyPaths: [...defaultReadonlyPaths],
    },
  };
}

/** warmUpContainers, logged: a warm-up that fails leaves a guest that is only slower. */
export async function warmUpInBackground(server: TtrpcServer, log: (message: string) => void): Promise<void> {
  const t0 = performance.now();
  try {
    await warmUpContainers(server);
    log(`container warm-up done in ${(performance.now() - t0).toFixed(0)} ms`);
  } catch (err) {
    log(`container warm-up failed after ${(performance.now() - t0).toFixed(0)} ms (the first container start will be slower): ${describeError(err)}`);
  }
}

/**
 * Creates, starts, execs `true` in (`execs` times), and removes the warm-up container, through the
 * agent's own ttRPC server over an in-memory pipe (so the host calls' whole path runs: framing,
 * protobuf, AgentService, the manager, crun); the container is removed whatever fails. Throws when
 * a step fails (the caller decides whether that matters: a warm-up that failed leaves a guest that
 * is only slower; a failed rehearsal makes the pool discard the VM).
 */
export async function warmUpContainers(server: TtrpcServer, rootfs = WARM_UP_ROOTFS, timeoutMs = 120_000, execs = 1): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // The guest root without what is mounted on it (a container's own /sys, /proc cannot go on top of
  // the guest's: the kernel refuses the same sysfs twice on one mount point, EBUSY).
  await mkdir(rootfs, { recursive: true });
  await run("mount", ["--bind", "/", rootfs], { timeoutMs: 30_000 });
  try {
    await withOwnClient(server, (agent) => runWarmUpContainer(agent, rootfs, deadline, execs));
  } finally {
    await run("umount", [rootfs], { timeoutMs: 30_000 });
    await rmdir(rootfs).catch(() => undefined);
  }
}

export type Agent = TypedClient<typeof AgentService extends GenService<infer S> ? S : never>;

/** Runs `fn` with a client of the agent's own ttRPC server over an in-memory pipe, closed after. */
export async function withOwnClient<T>(server: TtrpcServer, fn: (agent: Agent) => Promise<T>): Promise<T> {
  const [clientEnd, serverEnd] = pipePair();
  server.serve(serverEnd);
  const client = new TtrpcClient(clientEnd);
  try {
    return await fn(createClient(client, AgentService));
  } finally {
    client.close();
    clientEnd.destroy();
    serverEnd.destroy();
  }
}

async function runWarmUpContainer(agent: Agent, rootfs: string, deadline: number, execs: number): Promise<void> {
  const left = (): { timeoutMs: number } => ({ timeoutMs: Math.max(1, deadline - Date.now()) });
  const containerId = WARM_UP_ID;
  await agent.createContainer({ containerId, ociSpecJson: JSON.stringify(warmUpSpec()), rootfs, mounts: [], files: [], openStdin: false, sandboxPidns: false }, left());
  try {
    await agent.startContainer({ containerId }, left());
    // As the host runs an exec (ExecSync): ExecProcess, then Wait and both reads to EOF at once.
    for (let i = 1; i <= execs; i++) {
      const execId = `warm-up-${i}`;
      const proc = { args: ["true"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], cwd: "/", user: { uid: 0, gid: 0 } };
      await agent.execProcess({ containerId, execId, processJson: JSON.stringify(proc), terminal: false, openStdin: false }, left());
      const drain = async (read: Agent["readStdout"]): Promise<void> => {
        while (!(await read({ containerId, execId, len: 65536 }, left())).eof);
      };
      const [exit] = await Promise.all([agent.waitProcess({ containerId, execId }, left()), drain(agent.readStdout), drain(agent.readStderr)]);
      if (exit.status !== 0) throw new KataError("INTERNAL", `the warm-up exec of true exited with status ${exit.status}`);
    }
  } finally {
    await agent.removeContainer({ containerId, force: true }, { timeoutMs: 60_000 });
  }
}
