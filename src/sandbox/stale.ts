// Cleans up a sandbox whose owner is gone (crashed `kata-ts run`, restarted shim): reads its state
// file, kills the VM and virtiofsd by pid (only if the pid still runs that program), removes
// virtiofsd's pid file, unmounts the share and removes the state dir and block images.
import { readFile, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { readRecord } from "./state-file.js";
import { sandboxLayout } from "./guest-layout.js";
import { unmountAll } from "./mounts.js";
import { detachStalePodNetwork } from "./network/pod-network.js";
import { virtiofsdPidFile } from "./virtiofsd.js";
import { sandboxImagesDir } from "../util/paths.js";

async function commOf(pid: number): Promise<string | undefined> {
  return (await readFile(`/proc/${pid}/comm`, "utf8").catch(() => undefined))?.trim();
}

async function killIf(pid: number | undefined, expect: RegExp): Promise<void> {
  if (pid === undefined) return;
  const comm = await commOf(pid);
  if (comm === undefined || !expect.test(comm)) return; // gone, or the pid was reused
  process.kill(pid, "SIGKILL");
  for (let i = 0; i < 100 && (await commOf(pid)) !== undefined; i++) await sleep(20);
}

export async function cleanupStaleSandbox(id: string): Promise<void> {
  const layout = sandboxLayout(id);
  const rec = await readRecord(layout.stateFile).catch(() => undefined);
  await killIf(rec?.vmPid, /^(qemu|firecracker|cloud-hyperviso)/);
  await killIf(rec?.virtiofsdPid, /^virtiofsd/);
  await rm(virtiofsdPidFile(layout.virtiofsdSocket), { force: true });
  if (rec?.virtiofsdPidFile !== undefined) await rm(rec.virtiofsdPidFile, { force: true });
  if (rec?.network !== undefined) await detachStalePodNetwork(rec.network);
  await unmountAll(layout.stateDir);
  await rm(layout.stateDir, { recursive: true, force: true });
  // Container root filesystem images (Firecracker), once the VM that had them open is gone.
  await rm(sandboxImagesDir(id), { recursive: true, force: true });
}
