// One VM of a VMM driven over a REST API socket (Cloud Hypervisor, Firecracker): the API answering,
// then the driver's configure + boot requests, failing with the VMM's exit when it dies meanwhile.
// The lifecycle, the process, the capped console (both VMMs print the guest serial console on their
// stdout) and the teardown order are every driver's (../vmm-vm.ts).
import { KataError } from "../../util/errors.js";
import { VmmVm, type VmmCommand, type VmmVmOptions } from "../vmm-vm.js";
import type { VmConfig, VmExit } from "../types.js";
import type { ProcessExit } from "../vmm-process.js";
import type { ApiClient } from "./api-client.js";
import { classifyExit, describeExit, type RestVmmDriver } from "./driver.js";
import { restVmFiles, type RestVmLayout } from "./layout.js";

export type RestVmOptions = VmmVmOptions;

/** The VM options out of a driver's options (only the keys that are set). */
export function restVmOptions(o: RestVmOptions): RestVmOptions {
  return {
    ...(o.startTimeoutMs === undefined ? {} : { startTimeoutMs: o.startTimeoutMs }),
    ...(o.consoleLogMaxBytes === undefined ? {} : { consoleLogMaxBytes: o.consoleLogMaxBytes }),
  };
}

export class RestVm extends VmmVm {
  readonly accel = "kvm" as const;
  protected readonly vmmName: string;
  private api: ApiClient | undefined;

  constructor(
    config: VmConfig,
    private readonly layout: RestVmLayout,
    private readonly driver: RestVmmDriver,
    opts: RestVmOptions = {},
  ) {
    super(config, restVmFiles(layout), opts);
    this.vmmName = driver.name;
  }

  /** The VMM's API while the VM runs (after boot, until it ended). */
  protected get runningApi(): ApiClient | undefined {
    return this.state === "running" ? this.api : undefined;
  }

  get apiSocketPath(): string {
    return this.layout.apiSocketPath;
  }

  protected command(): Promise<VmmCommand> {
    return Promise.resolve({ binary: this.driver.binary, args: this.driver.args(this.config, this.layout), installHint: this.driver.installHint, console: "stdout" });
  }

  /** Poll the API until it answers (a refusal other than "not there yet" fails at once), then boot. */
  protected async control(deadline: number): Promise<void> {
    const api = this.driver.api(this.layout);
    this.api = api;
    await this.untilReady(
      `serve its API socket ${this.layout.apiSocketPath}`,
      deadline,
      (timeoutMs) => this.driver.ping(api, Math.min(timeoutMs, 1000)),
      (err) => !(err instanceof KataError) || err.code === "UNAVAILABLE" || err.code === "DEADLINE_EXCEEDED",
    );
    await this.whileAlive(this.driver.boot(api, this.config, this.layout));
  }

  protected async askToQuit(timeoutMs: number): Promise<boolean> {
    return this.api === undefined ? false : this.driver.shutdown(this.api, timeoutMs);
  }

  protected classify(pexit: ProcessExit): Pick<VmExit, "reason"> {
    return { reason: classifyExit(pexit, this.stopRequested) };
  }

  /** Run an API exchange, failing with the VMM's exit when it dies meanwhile. */
  private async whileAlive<T>(work: Promise<T>): Promise<T> {
    const proc = this.proc;
    if (proc === undefined) return work;
    const died = proc.exited.then((exit) => {
      throw new KataError("UNAVAILABLE", `${this.driver.name} exited while booting the VM (${describeExit(exit)}): ${this.vmmStderr() || "no message"}`);
    });
    try {
      return await Promise.race([work, died]);
    } catch (err) {
      // An API error caused by the VMM dying (connection reset) reads better as the exit.
      if (proc.hasExited) return died;
      throw err;
    } finally {
      died.catch(() => undefined);
    }
  }
}
