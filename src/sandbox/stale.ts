// Cleans up a sandbox whose owner is gone (crashed `kata-ts run`, restarted shim): reads its state
// file, kills the VM and virtiofsd by pid (only if the pid still runs that program), and also any
// QEMU or virtiofsd whose command line names the sandbox's state dir (an owner killed between a
// spawn and the save of its pid left one the state file does not name), removes virtiofsd's pid
// file, the pod network's host side, unmounts the share and removes the state dir and block images.
import { readdir, readFile, rm } from "node:fs/promises";
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

const helperComm = /^(qemu|firecracker|cloud-hyperviso|virtiofsd)/;

/** Live VMM and virtiofsd processes whose command line names a path under `dir`. */
async function helpersNaming(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const comm = await commOf(Number(name));
    if (comm === undefined || !helperComm.test(comm)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (argv.some((a) => a.includes(`${dir}/`))) out.push(Number(name));
  }
  return out;
}

export async function cleanupStaleSandbox(id: string): Promise<void> {
  const layout = sandboxLayout(id);
  const rec = await readRecord(layout.stateFile).catch(() => undefined);
  await killIf(rec?.vmPid, /^(qemu|firecracker|cloud-hyperviso)/);
  await killIf(rec?.virtiofsdPid, /^virtiofsd/);
  for (const pid of await helpersNaming(layout.stateDir)) await killIf(pid, helperComm);
  await rm(virtiofsdPidFile(layout.virtiofsdSocket), { force: true });
  if (rec?.virtiofsdPidFile !== undefined) await rm(rec.virtiofsdPidFile, { force: true });
  if (rec?.network !== undefined) await detachStalePodNetwork(rec.network);
  await unmountAll(layout.stateDir);
  await rm(layout.stateDir, { recursive: true, force: true });
  // Container root filesystem images (Firecracker), once the VM that had them open is gone.
  await rm(sandboxImagesDir(id), { recursive: true, force: true });
}
