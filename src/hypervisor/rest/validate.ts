// Checks shared by the API-driven drivers before anything is spawned.
import { KataError } from "../../util/errors.js";
import { tryRun } from "../../util/exec.js";
import { validateVmConfig } from "../validate.js";
import type { VmConfig } from "../types.js";

/** The generic checks (id, sizes, files) plus: these VMMs run guests under KVM only. */
export async function validateRestVmConfig(vmm: string, config: VmConfig, limits: { maxVcpus: number }): Promise<void> {
  if (config.accel === "tcg") {
    throw new KataError(
      "FAILED_PRECONDITION",
      `${vmm} runs guests only under KVM, and this VM asks for TCG (no usable KVM on this host: kata-ts check); use hypervisor = "qemu" here`,
    );
  }
  if (config.vcpus > limits.maxVcpus) {
    throw new KataError("INVALID_ARGUMENT", `${vmm} supports at most ${limits.maxVcpus} vCPUs per VM, got ${config.vcpus}`);
  }
  await validateVmConfig(config);
}

/** Version from a `--version` line such as "cloud-hypervisor v38.0" or "Firecracker v1.7.0". */
export function parseVersion(text: string): string | undefined {
  return /v?(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** `<binary> --version` -> "38.0"; NOT_FOUND with an install hint when it cannot run. */
export async function binaryVersion(binary: string, name: string, hint: string): Promise<string> {
  const out = await tryRun(binary, ["--version"], { timeoutMs: 10_000 });
  if (out === undefined) throw new KataError("NOT_FOUND", `${name} binary ${binary} not found or not runnable (${hint})`);
  const text = (out.stdout || out.stderr).trim();
  const version = parseVersion(text);
  if (version === undefined) throw new KataError("INTERNAL", `cannot read the ${name} version from: ${text.slice(0, 200)}`);
  return version;
}
