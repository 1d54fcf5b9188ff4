// Firecracker as a Hypervisor: one firecracker process per VM, configured over its REST API socket
// (machine-config, boot-source, drives, network-interfaces, vsock) and started with InstanceStart.
// The agent channel is its hybrid vsock; the guest serial console is the process's stdout.
//
// Firecracker has no virtio-fs, so the host directories kata-ts shares with QEMU and Cloud
// Hypervisor cannot reach the guest: a VM that asks for a shared file system is refused before
// anything starts. Container root filesystems come in as block images instead, through drives
// reserved at boot and re-pointed while the VM runs (drive-slots.ts; docs/hypervisor.md).
import { KataError } from "../../util/errors.js";
import { ApiClient, codeForStatus, type ApiResponse } from "../rest/api-client.js";
import { restVmLayout, type RestVmLayout } from "../rest/layout.js";
import type { RestVmmDriver } from "../rest/driver.js";
import { RestVm, restVmOptions, type RestVmOptions } from "../rest/rest-vm.js";
import { binaryVersion, validateRestVmConfig } from "../rest/validate.js";
import type { Hypervisor, HypervisorCapabilities, VmConfig } from "../types.js";
import { DriveSlots } from "./drive-slots.js";
import { maxNetDevices } from "../validate.js";
import { NoSharedFsError } from "../no-shared-fs.js";
import type { FcError, FcInstanceInfo } from "./api-types.js";
import { firecrackerRequests } from "./requests.js";

export const firecrackerBinary = "firecracker";
export const firecrackerInstallHint =
  "Debian 12 does not package firecracker: install a release binary and set [hypervisor.firecracker] path";

/** startTimeoutMs, consoleLogMaxBytes (cap of console.log, rotated once; default 1 MiB): as for every VMM. */
export interface FirecrackerOptions extends RestVmOptions {
  binary?: string;
  /** Placeholder drives per VM for container root filesystems (capabilities().blockRootfs); default 8, as Kata's. */
  blockSlots?: number;
}

export const defaultBlockSlots = 8;

/** Firecracker's documented vCPU range. */
const maxVcpus = 32;

export function fcFailure(method: string, path: string, res: ApiResponse): KataError {
  let detail = res.body.trim();
  try {
    const parsed = JSON.parse(detail) as FcError;
    if (typeof parsed.fault_message === "string") detail = parsed.fault_message;
  } catch {
    // not the documented Error body: show it as it came
  }
  return new KataError(codeForStatus(res.status), `firecracker refused ${method} ${path} (HTTP ${res.status}): ${detail || "no detail"}`);
}

/** The refusal for a feature Firecracker cannot provide (RunPodSandbox fails with it). */
export function firecrackerCannot(what: string): NoSharedFsError {
  return new NoSharedFsError("firecracker", what);
}

class FcDriver implements RestVmmDriver {
  readonly name = "firecracker";
  readonly installHint = firecrackerInstallHint;

  constructor(
    readonly binary: string,
    private readonly slots: DriveSlots | undefined,
  ) {}

  args(config: VmConfig, layout: RestVmLayout): string[] {
    return ["--api-sock", layout.apiSocketPath, "--id", config.id];
  }

  api(layout: RestVmLayout): ApiClient {
    return new ApiClient(layout.apiSocketPath, this.name, fcFailure);
  }

  async ping(api: ApiClient, timeoutMs: number): Promise<void> {
    const info = (await api.call("GET", "/", undefined, timeoutMs)) as Partial<FcInstanceInfo> | undefined;
    if (typeof info?.vmm_version !== "string") throw new KataError("INTERNAL", "firecracker GET / answer lacks vmm_version");
  }

  async boot(api: ApiClient, config: VmConfig, layout: RestVmLayout): Promise<void> {
    const slotDrives = this.slots === undefined ? [] : await this.slots.placeholders();
    for (const req of firecrackerRequests(config, layout.vsockSocketPath, slotDrives)) {
      await api.call("PUT", req.path, req.body);
    }
  }

  /** Firecracker has no "stop the VM" request (SendCtrlAltDel needs the guest's cooperation): SIGTERM ends it. */
  shutdown(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

/** A Firecracker VM; with config.blockSlots, `blocks` re-points its placeholder drives while it runs. */
export class FirecrackerVm extends RestVm {
  readonly blocks: DriveSlots | undefined;

  constructor(config: VmConfig, layout: RestVmLayout, binary: string, opts: RestVmOptions) {
    const self: { vm?: FirecrackerVm } = {};
    const n = config.blockSlots ?? 0;
    const slots = n > 0 ? new DriveSlots(n, layout.stateDir, () => self.vm?.runningApi) : undefined;
    super(config, layout, new FcDriver(binary, slots), opts);
    self.vm = this;
    this.blocks = slots;
  }
}

export class Firecracker implements Hypervisor {
  private constructor(
    private readonly opts: FirecrackerOptions,
    private readonly version: string,
  ) {}

  static async open(opts: FirecrackerOptions = {}): Promise<Firecracker> {
    const version = await binaryVersion(opts.binary ?? firecrackerBinary, "firecracker", firecrackerInstallHint);
    return new Firecracker(opts, version);
  }

  async create(config: VmConfig): Promise<FirecrackerVm> {
    if (config.sharedFs !== undefined) throw firecrackerCannot(`share host directories with the guest (virtio-fs tag ${config.sharedFs.tag})`);
    await validateRestVmConfig("firecracker", config, { maxVcpus });
    return new FirecrackerVm(config, restVmLayout(config.stateDir), this.opts.binary ?? firecrackerBinary, restVmOptions(this.opts));
  }

  private get blockSlots(): number {
    return this.opts.blockSlots ?? defaultBlockSlots;
  }

  capabilities(): HypervisorCapabilities {
    return {
      name: "firecracker",
      version: this.version,
      accels: ["kvm"],
      agentChannel: { transport: "hybrid-vsock" },
      ...(this.blockSlots > 0 ? { blockRootfs: { kind: "placeholder-drives" as const, slots: this.blockSlots } } : {}),
      network: { kind: "tap", maxDevices: maxNetDevices },
      seccomp: { enabled: true, detail: "firecracker's built-in seccomp filters (default on)" },
    };
  }
}
