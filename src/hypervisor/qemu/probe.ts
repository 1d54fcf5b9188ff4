// Facts about the installed QEMU, read once per process: its version (part of the KVM probe's
// cache key) and whether its seccomp sandbox is usable.
import { KataError } from "../../util/errors.js";
import { run, tryRun } from "../../util/exec.js";
import { seccompSandboxArgs } from "./args/control.js";

export const qemuBinary = "qemu-system-x86_64";

let versionMemo: Promise<string> | undefined;

/** "7.2.22" from `qemu-system-x86_64 --version`. */
export function qemuVersion(binary: string = qemuBinary): Promise<string> {
  versionMemo ??= run(binary, ["--version"], { timeoutMs: 10_000 }).then(({ stdout }) => {
    const m = /version (\d+\.\d+\.\d+)/.exec(stdout);
    if (m?.[1] === undefined) throw new KataError("INTERNAL", `cannot read the QEMU version from: ${stdout.trim().slice(0, 200)}`);
    return m[1];
  });
  // A failed probe is not remembered: the next caller retries.
  versionMemo.catch(() => {
    versionMemo = undefined;
  });
  return versionMemo;
}

let seccompMemo: Promise<boolean> | undefined;

/**
 * Whether this QEMU build can run under its own seccomp filter: start it with the exact -sandbox
 * option kata-ts uses and no guest, and ask it to quit over QMP on stdio.
 */
export function qemuSeccompSupported(binary: string = qemuBinary): Promise<boolean> {
  seccompMemo ??= tryRun(
    binary,
    ["-M", "none", "-nodefaults", "-no-user-config", "-display", "none", ...seccompSandboxArgs(), "-qmp", "stdio"],
    { timeoutMs: 10_000, input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' },
  ).then((out) => out !== undefined);
  return seccompMemo;
}
