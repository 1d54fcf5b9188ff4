// Shared by the vm*.test.ts suites: guest assets, per-test state dirs, and leak checks that look at
// the real system (processes in /proc, files on disk), not at our own bookkeeping.
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadGuestAssets, type GuestAssets } from "../../src/guest/assets.js";
import type { VmConfig } from "../../src/hypervisor/types.js";
import { tcgDefaultAcpiOff } from "../../src/hypervisor/qemu/args/machine.js";
import { defaultQemuMachine } from "../../src/config/defaults.js";

export async function assets(): Promise<GuestAssets> {
  return loadGuestAssets();
}

/** A private temp dir for one test; each VM gets a state dir inside it. */
export async function tempRoot(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `kata-ts-${name}-`));
}

export function vmConfig(a: GuestAssets, root: string, id: string, overrides: Partial<VmConfig> = {}): VmConfig {
  return {
    id,
    stateDir: join(root, id),
    vcpus: 1,
    memoryMiB: 512,
    kernelPath: a.kernelPath,
    ...(a.initrdPath === undefined ? {} : { initrdPath: a.initrdPath }),
    rootfsPath: a.rootfsPath,
    rootfsDevice: a.rootfsDevice,
    kernelCmdline: a.kernelCmdline,
    ...(a.kernelTraits === undefined ? {} : { kernelTraits: a.kernelTraits }),
    accel: "tcg",
    ...overrides,
  };
}

/**
 * Kernel parameters that make busybox `applet args...` the guest's PID 1 instead of the kata-ts
 * init: from the initramfs (rdinit=) when the assets have one, else from the root image (init=),
 * keeping the root parameters. The kernel's own messages stay on (no quiet), so tests can read
 * "Run ... as init process" on the console.
 */
export function busyboxPid1Cmdline(a: GuestAssets, applet: string, args: readonly string[]): string[] {
  if (a.initrdPath !== undefined) return [`rdinit=/bin/${applet}`, "--", ...args];
  const root = a.kernelCmdline.filter((p) => !p.startsWith("init=") && p !== "quiet" && !p.startsWith("loglevel="));
  // A guest without ACPI cannot power off: it resets, which -no-reboot turns into an exit that the
  // host counts as a power-off (the guest init's end_vm does the same).
  const pid1 = applet === "poweroff" && guestWithoutAcpi(a) ? "reboot" : applet;
  // The root image links busybox applets where busybox lists them (sbin/poweroff, bin/echo, ...).
  return [...root, `init=${pid1 === "poweroff" || pid1 === "reboot" ? "/sbin" : "/bin"}/${pid1}`, "--", ...args];
}

/**
 * The guest's kernel boots with acpi=off on the default machine under TCG (QEMU's q35 then has no
 * ACPI tables): the project's patched kernel by default, any kernel given acpi=off.
 */
export function guestWithoutAcpi(a: Pick<GuestAssets, "kernelCmdline" | "kernelTraits">): boolean {
  const traits = a.kernelTraits === undefined ? {} : { traits: a.kernelTraits };
  return a.kernelCmdline.includes("acpi=off") || tcgDefaultAcpiOff({ machine: defaultQemuMachine, accel: "tcg", kernelParams: a.kernelCmdline, ...traits });
}

/** Pids of processes whose command line mentions `marker` (e.g. a test's temp root). */
export async function processesMentioning(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(marker)) pids.push(Number(entry));
  }
  return pids;
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** Kill whatever a failed test left behind (by pid, found by marker), then remove the temp root. */
export async function cleanupRoot(root: string): Promise<void> {
  for (const pid of await processesMentioning(root)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await rm(root, { recursive: true, force: true });
}
