// Runs a stand-in VMM for a driver under test: a wrapper script where the driver expects the VMM
// binary (so the driver spawns a real process exactly as it would spawn cloud-hypervisor or
// firecracker), a JSON-lines log of what the stand-in saw, and the fault it should play.
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Fault } from "./common.js";
import type { StandinEntry } from "./log.js";

export type StandinKind = "cloud-hypervisor" | "firecracker";

export interface Standin {
  /** The executable to give the driver as its binary. */
  binary: string;
  logPath: string;
  entries(): Promise<StandinEntry[]>;
  /** Every deviation from the published API the stand-in saw. */
  violations(): Promise<string[]>;
  /** "PUT /api/v1/vm.create", ... in order. */
  requests(): Promise<string[]>;
}

const mainJs = fileURLToPath(new URL("./main.js", import.meta.url));
const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

/** "emulated": the agent's Health service on the hybrid vsock (guest.ts); "qemu": the real guest under QEMU (qemu-guest.ts, Firecracker only). */
export type StandinGuestKind = "emulated" | "qemu";

export async function standin(kind: StandinKind, dir: string, name: string, fault: Fault = "none", guest: StandinGuestKind = "emulated"): Promise<Standin> {
  const binary = join(dir, `${name}.sh`);
  const logPath = join(dir, `${name}.log`);
  await writeFile(
    binary,
    `#!/bin/sh\nSTANDIN_LOG=${quote(logPath)} STANDIN_FAULT=${fault} STANDIN_GUEST=${guest} exec ${quote(process.execPath)} ${quote(mainJs)} ${kind} "$@"\n`,
  );
  await chmod(binary, 0o755);
  await writeFile(logPath, "");
  const entries = async (): Promise<StandinEntry[]> =>
    (await readFile(logPath, "utf8")).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as StandinEntry);
  return {
    binary,
    logPath,
    entries,
    violations: async () => (await entries()).flatMap((e) => (e.violation === undefined ? [] : [e.violation])),
    requests: async () => (await entries()).flatMap((e) => (e.request === undefined ? [] : [`${e.request.method} ${e.request.path}`])),
  };
}
