// Pods with a web server in them, for the network e2e test and bench/network.ts: a busybox httpd
// serving one page (the pod's name) on WEB_PORT, behind the pod's CNI IP. Clients that are not
// pods run inside the harness's netns (nsenter), never on the host's own network.
import { create } from "@bufbuild/protobuf";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { CriClient } from "../../src/cri/client.js";
import { DNSConfigSchema, LinuxPodSandboxConfigSchema, PodSandboxConfigSchema } from "../../src/cri/gen/runtime/v1/api_pb.js";
import { ContainerState, podSandboxConfig, waitForContainerState, type PodSandboxConfigInit } from "../../src/cri/pod.js";
import { KataError } from "../../src/util/errors.js";
import { run, type ExecResult } from "../../src/util/exec.js";
import type { PrivateContainerd } from "../harness/containerd.js";
import { BUSYBOX_IMAGE_REF } from "../harness/images.js";

export const WEB_PORT = 8080;

export interface WebPod {
  name: string;
  handler: string;
  podSandboxId: string;
  containerId: string;
  config: PodSandboxConfigInit;
  /** The pod IP as CRI reports it (PodSandboxStatus.network.ip). */
  ip: string;
  /** ExecSync in the web container: exit code and output. */
  exec(cmd: string[], timeoutS?: number): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  remove(): Promise<void>;
}

export interface WebPodOptions {
  name: string;
  handler: string;
  dns?: { servers: string[]; searches: string[]; options: string[] };
  /** Extra shell run before the server starts (e.g. to prepare a download file). */
  prepare?: string;
  /** The pod's sysctls (PodSandboxConfig.linux.sysctls), applied to its containers. */
  sysctls?: Record<string, string>;
  annotations?: Record<string, string>;
}

export async function startWebPod(ctd: PrivateContainerd, cri: CriClient, o: WebPodOptions): Promise<WebPod> {
  const logDirectory = join(ctd.baseDir, "pods", `default_${o.name}_uid-${o.name}`);
  await mkdir(logDirectory, { recursive: true });
  const config = create(PodSandboxConfigSchema, podSandboxConfig({ name: o.name, uid: `uid-${o.name}`, logDirectory, ...(o.annotations ? { annotations: o.annotations } : {}) }));
  if (o.dns) config.dnsConfig = create(DNSConfigSchema, o.dns);
  if (o.sysctls) {
    config.linux ??= create(LinuxPodSandboxConfigSchema, {});
    config.linux.sysctls = o.sysctls;
  }
  const { podSandboxId } = await cri.runtime.runPodSandbox({ config, runtimeHandler: o.handler });
  const remove = async (): Promise<void> => {
    await cri.runtime.stopPodSandbox({ podSandboxId });
    await cri.runtime.removePodSandbox({ podSandboxId });
  };
  try {
    const script = `mkdir -p /www && echo ${o.name} > /www/index.html && ${o.prepare ?? "true"} && exec httpd -f -p ${WEB_PORT} -h /www`;
    const { containerId } = await cri.runtime.createContainer({
      podSandboxId,
      sandboxConfig: config,
      config: { metadata: { name: "web" }, image: { image: BUSYBOX_IMAGE_REF }, command: ["sh", "-c", script], logPath: "web/0.log" },
    });
    await cri.runtime.startContainer({ containerId });
    await waitForContainerState(cri, containerId, ContainerState.CONTAINER_RUNNING, { timeoutMs: 180_000 });
    const status = await cri.runtime.podSandboxStatus({ podSandboxId });
    const ip = status.status?.network?.ip ?? "";
    if (ip === "") throw new KataError("INTERNAL", `pod ${o.name} has no IP in PodSandboxStatus`);
    const exec = async (cmd: string[], timeoutS = 60) => {
      const r = await cri.runtime.execSync({ containerId, cmd, timeout: BigInt(timeoutS) });
      return { exitCode: r.exitCode, stdout: Buffer.from(r.stdout).toString(), stderr: Buffer.from(r.stderr).toString() };
    };
    // Running is not listening: wait until the page is served inside the pod.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await exec(["sh", "-c", httpGetScript("127.0.0.1")]);
      if (r.exitCode === 0 && r.stdout.endsWith(`\r\n\r\n${o.name}\n`)) break;
      if (Date.now() > deadline) throw new KataError("DEADLINE_EXCEEDED", `the web server in pod ${o.name} did not answer within 60 s: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 250));
    }
    return { name: o.name, handler: o.handler, podSandboxId, containerId, config, ip, exec, remove };
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
}

/** `sh -c` script that GETs / from ip:port with busybox nc (busybox-static's wget segfaults here). */
export function httpGetScript(ip: string, port = WEB_PORT): string {
  return `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 20 ${ip} ${port}`;
}

/** The body of an HTTP/1.0 response; throws unless the status is 200. */
export function httpBody(response: string): string {
  const [head = "", ...rest] = response.split("\r\n\r\n");
  if (!/^HTTP\/1\.[01] 200 /.test(head)) throw new KataError("INTERNAL", `not a 200 response: ${JSON.stringify(response.slice(0, 200))}`);
  return rest.join("\r\n\r\n");
}

/** Runs a host tool inside the harness's netns (where the CNI bridge is), never on the host's network. */
export function inHarnessNetns(ctd: PrivateContainerd, file: string, args: readonly string[], timeoutMs = 60_000): Promise<ExecResult> {
  return run("nsenter", [`--net=${ctd.netnsPath}`, "--", file, ...args], { timeoutMs });
}

/** The pod's netns path, from containerd's verbose PodSandboxStatus (the sandbox's runtime spec). */
export async function podNetnsPath(cri: CriClient, podSandboxId: string): Promise<string> {
  const status = await cri.runtime.podSandboxStatus({ podSandboxId, verbose: true });
  const info = JSON.parse(status.info.info ?? "{}") as { runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } } };
  const path = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === "network")?.path;
  if (path === undefined) throw new KataError("NOT_FOUND", `pod ${podSandboxId} has no network namespace path in its status`);
  return path;
}
