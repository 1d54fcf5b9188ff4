// The pod's sysctls (the sandbox spec's linux.sysctl), written in the guest before any container
// runs. The VM is the pod: its network and IPC namespaces are the ones the containers share, so a
// namespaced sysctl (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) set here is what
// the containers see, as runc sets them in the pause container's namespaces. Node-wide ones
// ("unsafe" to kubelet) only touch this pod's own kernel.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$/;

/** /proc/sys path of a sysctl name: dots separate, unless the name uses slashes (sysctl(8)). */
export function sysctlPath(name: string, procSys = "/proc/sys"): string {
  if (!NAME_RE.test(name) || name.split(/[./]/).some((part) => part === "" || part === "..")) {
    throw new KataError("INVALID_ARGUMENT", `sysctl name ${JSON.stringify(name)} is not a valid sysctl name (like net.ipv4.ip_forward)`);
  }
  const parts = name.includes("/") ? name.split("/") : name.split(".");
  return join(procSys, ...parts);
}

/** Writes each sysctl; the first one that cannot be written fails with its name and the reason. */
export async function applySysctls(sysctls: Record<string, string>, procSys = "/proc/sys"): Promise<void> {
  for (const [name, value] of Object.entries(sysctls)) {
    const path = sysctlPath(name, procSys);
    try {
      await writeFile(path, value, { flag: "r+" }); // never create: a missing sysctl is an error
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "the guest kernel has no such sysctl" : code === "EINVAL" ? "the guest kernel refused the value" : `${code ?? "error"}`;
      throw new KataError("INVALID_ARGUMENT", `sysctl ${name}=${value} cannot be applied in the pod's VM: ${why}`, { cause: err });
    }
  }
}
