// The process that creates a pod for reattach.test.ts and is then SIGKILLed: a sandbox through the
// shim's pod factory (with its pod cgroup), a container printing a numbered line every 200 ms
// (its output copied to a file, as the shim copies to containerd's FIFO), an exec `sleep 600`, and
// an exec that exits 7 after 3 s (while no host is attached). It prints one JSON line with what the
// re-attacher needs (the ReattachRequest and the processes), then waits to be killed.
// argv[2]: JSON { id, bundle, netnsPath, cgroupsPath, outFile }.
import { createWriteStream } from "node:fs";
import { defaultConfig } from "../../src/config/index.js";
import { runSpec } from "../../src/sandbox/default-spec.js";
import { vmPodFactoryWithCgroup } from "../../src/shim/sandbox-adapter.js";
import type { ReattachRequest, SandboxRequest } from "../../src/shim/pod-port.js";
import { createLogger } from "../../src/util/log.js";

export interface ChildArgs {
  id: string;
  bundle: string;
  netnsPath: string;
  cgroupsPath: string;
  outFile: string;
}

export interface ChildReport {
  request: ReattachRequest;
  vmPid: number;
  processes: { containerId: string; execId: string }[];
}

export const TICKER = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done";
const noStdio = { stdin: "", stdout: "", stderr: "", terminal: false };

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? "{}") as ChildArgs;
  const log = createLogger("reattach-child");
  const config = defaultConfig();
  config.factory.enable_pool = false;
  config.agent.dial_timeout = 600;
  config.hypervisor.qemu.accel = "tcg";
  const spec = runSpec({ args: ["sleep", "inf"] });
  spec.linux!.namespaces = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network", path: args.netnsPath }];
  (spec.linux as Record<string, unknown>).cgroupsPath = args.cgroupsPath;
  const sandboxReq: SandboxRequest = { id: args.id, bundle: args.bundle, spec: spec as SandboxRequest["spec"], rootfs: [], config, sizing: { vcpus: 1, memoryMiB: 512, limitsMiB: 0 } };
  const factory = vmPodFactoryWithCgroup(log);
  const pod = await factory.createPod(sandboxReq);
  await pod.sandboxProcess().start();
  // The container's rootfs is the bundle's rootfs dir, already there (no mounts from containerd).
  const init = await pod.createContainer({ id: "ctr", bundle: args.bundle, spec: runSpec({ args: ["sh", "-c", TICKER] }) as SandboxRequest["spec"], rootfs: [], stdio: noStdio });
  await init.start();
  init.stdout?.pipe(createWriteStream(args.outFile));
  const exec = (execId: string, script: string): Promise<void> =>
    pod.exec({ containerId: "ctr", execId, process: { args: ["sh", "-c", script], cwd: "/", env: ["PATH=/bin:/sbin"], user: { uid: 0, gid: 0 } }, stdio: noStdio }).then((p) => p.start());
  await exec("sleeper", "exec sleep 600");
  await exec("quick", "sleep 3; exit 7");
  const request: ReattachRequest = { id: args.id, bundle: args.bundle, spec: sandboxReq.spec, rootfs: [], config, sizing: sandboxReq.sizing, containers: [{ id: "ctr", bundle: args.bundle }] };
  const report: ChildReport = { request, vmPid: pod.pid, processes: [{ containerId: "ctr", execId: "" }, { containerId: "ctr", execId: "sleeper" }, { containerId: "ctr", execId: "quick" }] };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  setInterval(() => undefined, 60_000); // until SIGKILL
}

if (process.argv[1]?.endsWith("reattach-child.js")) {
  main().catch((err: unknown) => {
    process.stderr.write(`reattach-child: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
