// The sandbox's record on disk (/run/kata-ts/<id>/state.json): enough for another process (a
// restarted shim, `kata-ts run` after a crash, a cleanup command) to find the VM and its helpers
// and tear them down. Written atomically (write + rename) on every lifecycle change.
import { readFile, rename, writeFile } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import type { ResolvedAccel } from "../hypervisor/types.js";
import type { PodNetworkRecord } from "./network/pod-network.js";

export type SandboxStatus = "creating" | "ready" | "stopping" | "stopped";

export interface SandboxRecord {
  id: string;
  status: SandboxStatus;
  createdAt: string;
  /** Process ids of the helpers; a later process kills them by pid (checking the command name). */
  vmPid?: number;
  virtiofsdPid?: number;
  /** An adopted VM's virtiofsd leaves its pid file under the pool's path, not the sandbox's. */
  virtiofsdPidFile?: string;
  agentSocketPath?: string;
  /** The VMM's configuration name ("qemu", ...): only a QEMU VM can be reattached (reattach.ts). */
  vmm?: string;
  /** The VM's own directory (QMP socket, agent socket, console log), for a process taking it over. */
  vmStateDir?: string;
  accel?: ResolvedAccel;
  /** The pod netns mirror (taps, qdiscs) to undo if the owner dies. */
  network?: PodNetworkRecord;
  sharedDir: string;
  containers: Record<string, ContainerRecord>;
}

export interface ContainerRecord {
  /** "created" until started, then "running" (not rewritten when it exits: the agent keeps that). */
  status: string;
  hostRootfs: string;
  /** Its init process has a terminal (no stderr stream). */
  terminal?: boolean;
  /** Guest pid of its init process, once started. */
  pid?: number;
}

export async function writeRecord(file: string, rec: SandboxRecord): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${JSON.stringify(rec, null, 2)}\n`);
  await rename(tmp, file);
}

export async function readRecord(file: string): Promise<SandboxRecord> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new KataError("NOT_FOUND", `no sandbox state at ${file}`, { cause: err });
  }
  try {
    return JSON.parse(text) as SandboxRecord;
  } catch (err) {
    throw new KataError("INTERNAL", `sandbox state ${file} is not valid JSON; remove the directory by hand`, { cause: err });
  }
}
