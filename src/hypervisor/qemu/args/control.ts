// How QEMU itself runs: no default devices or config files, no display, a QMP control socket,
// a pid file, exit instead of reboot, a pvpanic device so that a guest panic is seen, and
// optionally its own seccomp filter.
import { qemuOpts } from "./opts.js";

export interface ControlOptions {
  name: string;
  qmpSocketPath: string;
  pidFilePath: string;
  /** -sandbox on with the strict deny set, where the QEMU build supports it. */
  seccomp: boolean;
  /**
   * The panic device: "pvpanic" (ISA; default) is found by the guest through ACPI only, so a guest
   * without ACPI on a PCI machine gets "pvpanic-pci", which the PCI bus enumerates.
   */
  panicDevice?: "pvpanic" | "pvpanic-pci";
}

export function renderControl(opts: ControlOptions): string[] {
  const args = [
    "-name",
    qemuOpts(undefined, { guest: opts.name }),
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-chardev",
    qemuOpts("socket", { id: "qmp0", path: opts.qmpSocketPath, server: true, wait: false }),
    "-mon",
    qemuOpts(undefined, { chardev: "qmp0", mode: "control" }),
    "-pidfile",
    opts.pidFilePath,
    // A reboot request (e.g. the kernel's panic=-1) ends the VM; kata-ts never reboots a guest.
    "-no-reboot",
    // pvpanic lets a guest kernel with the pvpanic driver report a panic (QMP GUEST_PANICKED).
    "-device",
    opts.panicDevice ?? "pvpanic",
    "-action",
    "panic=exit-failure",
  ];
  if (opts.seccomp) args.push(...seccompSandboxArgs());
  return args;
}

/** QEMU's seccomp filter with every optional deny set: no obsolete syscalls, setuid, fork/exec, or affinity/priority changes. */
export function seccompSandboxArgs(): string[] {
  return ["-sandbox", qemuOpts("on", { obsolete: "deny", elevateprivileges: "deny", spawn: "deny", resourcecontrol: "deny" })];
}
