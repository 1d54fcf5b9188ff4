// Making containerd read its new config after install/uninstall. Where systemd runs containerd
// (`systemctl is-active containerd`), restart it; otherwise tell the user exactly what to do.
// "host" mode is for the installer DaemonSet: it runs with hostPID, and reaches the node's systemd
// through PID 1's namespaces with nsenter.
import { run, tryRun } from "../util/exec.js";

export type RestartMode = "auto" | "host" | "never";
export const RESTART_MODES: readonly RestartMode[] = ["auto", "host", "never"];

export interface RestartOutcome {
  restarted: boolean;
  /** One line for the user: what happened, or the command to run. */
  message: string;
}

function hostCommand(mode: RestartMode, argv: string[]): [string, string[]] {
  if (mode !== "host") return [argv[0] as string, argv.slice(1)];
  return ["nsenter", ["--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--", ...argv]];
}

export async function restartContainerd(mode: RestartMode, configPath: string): Promise<RestartOutcome> {
  const manual = `restart containerd so it reads ${configPath} (e.g. systemctl restart containerd, or stop it and start it again with the same arguments)`;
  if (mode === "never") return { restarted: false, message: `not restarting containerd (--restart never): ${manual}` };
  const [isActiveCmd, isActiveArgs] = hostCommand(mode, ["systemctl", "is-active", "--quiet", "containerd"]);
  if ((await tryRun(isActiveCmd, isActiveArgs, { timeoutMs: 10_000 })) === undefined) {
    return { restarted: false, message: `containerd is not an active systemd service here: ${manual}` };
  }
  const [cmd, args] = hostCommand(mode, ["systemctl", "restart", "containerd"]);
  await run(cmd, args, { timeoutMs: 120_000 });
  return { restarted: true, message: "containerd restarted (systemctl restart containerd)" };
}
