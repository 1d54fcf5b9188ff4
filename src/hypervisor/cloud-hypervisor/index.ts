// Cloud Hypervisor as a Hypervisor: one cloud-hypervisor process per VM, driven over its REST API
// socket (ping, vm.create, vm.boot, vm.shutdown, vmm.shutdown). The agent channel is its hybrid
// vsock; container root filesystems reach the guest through virtio-fs like with QEMU.
import { KataError } from "../../util/errors.js";
import { ApiClient, codeForStatus, type ApiResponse } from "../rest/api-client.js";
import { restVmLayout, type RestVmLayout } from "../rest/layout.js";
import type { RestVmmDriver } from "../rest/driver.js";
import { RestVm, restVmOptions, type RestVmOptions } from "../rest/rest-vm.js";
import { binaryVersion, validateRestVmConfig } from "../rest/validate.js";
import type { Hypervisor, HypervisorCapabilities, VmConfig } from "../types.js";
import { maxNetDevices } from "../validate.js";
import { chApiBase, type ChVmmPingResponse } from "./api-types.js";
import { renderChVmConfig, type RootImageDevice } from "./vm-config.js";

export const cloudHypervisorBinary = "cloud-hypervisor";
export const cloudHypervisorInstallHint =
  "Debian 12 does not package cloud-hypervisor: install a release binary and set [hypervisor.cloud-hypervisor] path";

/** startTimeoutMs, consoleLogMaxBytes (cap of console.log, rotated once; default 1 MiB): as for every VMM. */
export interface CloudHypervisorOptions extends RestVmOptions {
  binary?: string;
  /** How the guest image is attached: virtio-blk (default) or virtio-pmem (DAX, shared page cache). */
  rootImage?: RootImageDevice;
}

const maxVcpus = 254;

/** Cloud Hypervisor answers errors with a text body (the error chain), sometimes a JSON list of strings. */
export function chFailure(method: string, path: string, res: ApiResponse): KataError {
  let detail = res.body.trim();
  try {
    const parsed = JSON.parse(detail) as unknown;
    if (Array.isArray(parsed)) detail = parsed.map(String).join(": ");
  } catch {
    // plain text: keep it
  }
  return new KataError(
    codeForStatus(res.status),
    `cloud-hypervisor refused ${method} ${path} (HTTP ${res.status}): ${detail || "no detail"}`,
  );
}

class ChDriver implements RestVmmDriver {
  readonly name = "cloud-hypervisor";
  readonly installHint = cloudHypervisorInstallHint;

  constructor(
    readonly binary: string,
    private readonly rootImage: RootImageDevice,
  ) {}

  args(_config: VmConfig, layout: RestVmLayout): string[] {
    return ["--api-socket", `path=${layout.apiSocketPath}`];
  }

  api(layout: RestVmLayout): ApiClient {
    return new ApiClient(layout.apiSocketPath, this.name, chFailure);
  }

  async ping(api: ApiClient, timeoutMs: number): Promise<void> {
    const res = (await api.call("GET", `${chApiBase}/vmm.ping`, undefined, timeoutMs)) as Partial<ChVmmPingResponse> | undefined;
    if (typeof res?.version !== "string") throw new KataError("INTERNAL", "cloud-hypervisor vmm.ping answer lacks a version");
  }

  async boot(api: ApiClient, config: VmConfig, layout: RestVmLayout): Promise<void> {
    const body = renderChVmConfig(config, { rootImage: this.rootImage, vsockSocketPath: layout.vsockSocketPath });
    await api.call("PUT", `${chApiBase}/vm.create`, body);
    await api.call("PUT", `${chApiBase}/vm.boot`);
  }

  async shutdown(api: ApiClient, timeoutMs: number): Promise<boolean> {
    // vm.shutdown stops the guest (405 when it is not running: fine); vmm.shutdown ends the process.
    await api.call("PUT", `${chApiBase}/vm.shutdown`, undefined, timeoutMs).catch(() => undefined);
    await api.call("PUT", `${chApiBase}/vmm.shutdown`, undefined, timeoutMs);
    return true;
  }
}

export class CloudHypervisor implements Hypervisor {
  private constructor(
    private readonly opts: CloudHypervisorOptions,
    private readonly version: string,
  ) {}

  /** Reads the version (NOT_FOUND when the binary is missing: it is not packaged for Debian 12). */
  static async open(opts: CloudHypervisorOptions = {}): Promise<CloudHypervisor> {
    const version = await binaryVersion(opts.binary ?? cloudHypervisorBinary, "cloud-hypervisor", cloudHypervisorInstallHint);
    return new CloudHypervisor(opts, version);
  }

  async create(config: VmConfig): Promise<RestVm> {
    await validateRestVmConfig("cloud-hypervisor", config, { maxVcpus });
    const driver = new ChDriver(this.opts.binary ?? cloudHypervisorBinary, this.opts.rootImage ?? "disk");
    return new RestVm(config, restVmLayout(config.stateDir), driver, restVmOptions(this.opts));
  }

  capabilities(): HypervisorCapabilities {
    return {
      name: "cloud-hypervisor",
      version: this.version,
      accels: ["kvm"],
      agentChannel: { transport: "hybrid-vsock" },
      sharedFs: { kind: "virtio-fs", requiresSharedMemory: true, dax: false },
      pmem: { kind: "virtio-pmem" },
      network: { kind: "tap", maxDevices: maxNetDevices },
      seccomp: { enabled: true, detail: "cloud-hypervisor's built-in seccomp filters (default on)" },
    };
  }
}
