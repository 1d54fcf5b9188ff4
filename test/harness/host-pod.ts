// A PodFactory whose "pod" is host processes: the container's rootfs mounts are mounted into the
// bundle and its process runs chrooted there. The test shim (host-pod-shim.ts) runs the real shim
// code with it so that tests can drive the shim from a real containerd - FIFOs, events, Wait,
// exec, exit codes - independently of VMs. Not a runtime: no namespaces, no cgroups, no isolation.
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { constants as os } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { run } from "../../src/util/exec.js";
import type {
  ContainerRequest, ContainerStats, ExecRequest, OciProcess, Pod, PodFactory, PodProcess, ProcessExit, SandboxRequest,
} from "../../src/shim/pod-port.js";

class HostProcess implements PodProcess {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  private child: ChildProcess | undefined;
  private resolveExit!: (e: ProcessExit) => void;
  private readonly exit = new Promise<ProcessExit>((r) => (this.resolveExit = r));

  constructor(
    readonly pid: number,
    private readonly argv: string[],
    private readonly env: string[],
  ) {}

  async start(): Promise<void> {
    const [file, ...args] = this.argv;
    const env = Object.fromEntries(this.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
    const child = spawn(file as string, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    this.child = child;
    child.stdout.pipe(this.stdout);
    child.stderr.pipe(this.stderr);
    this.stdin.pipe(child.stdin).on("error", () => undefined);
    child.once("exit", (code, signal) => {
      const status = signal !== null ? 128 + (os.signals[signal] ?? 9) : (code ?? 255);
      this.resolveExit({ exitStatus: status, exitedAt: new Date() });
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", reject);
    });
  }

  async signal(signal: number): Promise<void> {
    if (this.child === undefined) {
      this.stdout.end();
      this.stderr.end();
      this.resolveExit({ exitStatus: 128 + signal, exitedAt: new Date() });
    } else {
      this.child.kill(signal);
    }
  }

  wait(): Promise<ProcessExit> {
    return this.exit;
  }

  async closeStdin(): Promise<void> {
    this.stdin.end();
  }

  async resizePty(): Promise<void> {}
}

class HostPod implements Pod {
  private readonly pauseChild: ChildProcess;
  private readonly pauseProc: HostProcess;
  private readonly rootfs = new Map<string, string>();
  private readonly procs: HostProcess[] = [];

  constructor() {
    this.pauseChild = spawn("sleep", ["infinity"], { stdio: "ignore" });
    this.pauseProc = new HostProcess(this.pid, [], []);
    this.pauseChild.once("exit", () => void this.pauseProc.signal(15));
  }

  get pid(): number {
    return this.pauseChild.pid ?? 0;
  }

  sandboxProcess(): PodProcess {
    const pause = this.pauseChild;
    const proc = this.pauseProc;
    return {
      pid: this.pid,
      start: async () => undefined,
      signal: async (sig) => void pause.kill(sig),
      wait: () => proc.wait(),
      closeStdin: async () => undefined,
      resizePty: async () => undefined,
    };
  }

  async createContainer(req: ContainerRequest): Promise<PodProcess> {
    const root = join(req.bundle, "rootfs");
    for (const m of req.rootfs) await run("mount", ["-t", m.type, "-o", m.options.join(","), m.source, root]);
    this.rootfs.set(req.id, root);
    return this.track(root, req.spec.process as OciProcess);
  }

  async exec(req: ExecRequest): Promise<PodProcess> {
    return this.track(this.rootfs.get(req.containerId) ?? "/", req.process);
  }

  private track(root: string, process: OciProcess): PodProcess {
    const args = (process.args as string[] | undefined) ?? [];
    const proc = new HostProcess(this.pid, ["chroot", root, ...args], (process.env as string[] | undefined) ?? []);
    this.procs.push(proc);
    return proc;
  }

  async removeContainer(id: string): Promise<void> {
    const root = this.rootfs.get(id);
    this.rootfs.delete(id);
    if (root !== undefined) await run("umount", [root]).catch(() => undefined);
  }

  async pids(): Promise<number[]> {
    return [this.pid];
  }

  async stats(): Promise<ContainerStats> {
    // The pause process's resident set stands in for the container's memory.
    const status = await readFile(`/proc/${this.pid}/status`, "utf8").catch(() => "");
    const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    return { pidsCurrent: 1, memoryUsageBytes: rssKiB * 1024 };
  }

  async update(): Promise<void> {}

  onOom(): void {}

  async destroy(): Promise<void> {
    for (const p of this.procs) await p.signal(9).catch(() => undefined);
    for (const id of [...this.rootfs.keys()]) await this.removeContainer(id);
    this.pauseChild.kill("SIGKILL");
  }
}

export function hostPodFactory(): PodFactory {
  return {
    createPod: async (_req: SandboxRequest) => new HostPod(),
    cleanupPod: async () => undefined,
  };
}
