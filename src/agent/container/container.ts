// One container in the guest: its bundle directory, its init process and the processes exec'd
// into it. The container's state follows its init process: created -> running -> stopped.
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import { execArgv, type CrunConfig } from "../oci/crun.js";
import type { OciProcess, OciSpec } from "../../protocol/contract/oci.js";
import { ContainerProcess, type ProcessTools } from "./process.js";

export type ContainerState = "created" | "running" | "stopped";

export interface ContainerInit {
  id: string;
  bundleDir: string;
  spec: OciSpec;
  init: ContainerProcess;
  crun: CrunConfig;
  tools: ProcessTools;
  /** Absolute cgroup v2 directory of the container in the guest (undefined: cgroups disabled). */
  cgroupDir: string | undefined;
  /** See ManagerConfig.kernelLog. */
  kernelLog?: string | undefined;
}

export class Container {
  readonly id: string;
  readonly bundleDir: string;
  readonly spec: OciSpec;
  readonly init: ContainerProcess;
  readonly cgroupDir: string | undefined;
  private readonly execs = new Map<string, ContainerProcess>();

  constructor(private readonly c: ContainerInit) {
    this.id = c.id;
    this.bundleDir = c.bundleDir;
    this.spec = c.spec;
    this.init = c.init;
    this.cgroupDir = c.cgroupDir;
  }

  get state(): ContainerState {
    const s = this.init.state;
    return s === "exited" ? "stopped" : s;
  }

  /** The init process for "" or the container id (containerd's convention), else an exec'd one. */
  process(execId: string): ContainerProcess {
    if (execId === "" || execId === this.id) return this.init;
    const p = this.execs.get(execId);
    if (p === undefined) throw new KataError("NOT_FOUND", `container ${this.id} has no process ${JSON.stringify(execId)}`);
    return p;
  }

  allProcesses(): ContainerProcess[] {
    return [this.init, ...this.execs.values()];
  }

  async exec(execId: string, proc: OciProcess, openStdin: boolean, deadline?: number): Promise<ContainerProcess> {
    if (execId === "" || execId === this.id || this.execs.has(execId)) {
      throw new KataError("ALREADY_EXISTS", `container ${this.id} already has a process ${JSON.stringify(execId)}`);
    }
    if (this.state !== "running") {
      throw new KataError("FAILED_PRECONDITION", `cannot exec into container ${this.id}: it is ${this.state}`);
    }
    // exec ids are free-form strings from the host: files are named by a hash of them.
    const tag = createHash("sha256").update(execId).digest("hex").slice(0, 16);
    const processFile = join(this.bundleDir, `exec-${tag}.json`);
    const pidFile = join(this.bundleDir, `exec-${tag}.pid`);
    const logFile = join(this.bundleDir, `exec-${tag}.log`);
    await writeFile(processFile, JSON.stringify(proc));
    const p = new ContainerProcess({
      containerId: this.id,
      execId,
      argv: execArgv(this.c.crun, this.id, processFile, pidFile, logFile),
      pidFile,
      logFile,
      terminal: proc.terminal === true,
      openStdin,
      tools: this.c.tools,
      kernelLog: this.c.kernelLog,
    });
    this.execs.set(execId, p);
    try {
      await p.start(deadline);
    } catch (err) {
      this.execs.delete(execId);
      throw err;
    }
    return p;
  }
}
