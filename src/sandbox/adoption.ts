// A VM booted ahead of its pod (the VM pool, src/pool) that a sandbox takes instead of booting one.
// The sandbox only says where the VM's files go and records its pids; the adopter moves the VM in
// (directory, cgroup, priority, network), pushing each undo on the sandbox's stack as it succeeds.
import type { Vm } from "../hypervisor/types.js";
import type { TtrpcClient } from "../protocol/ttrpc/index.js";
import type { StepClock } from "../util/step-clock.js";
import type { GuestNetworkView, PodNetwork } from "./network/pod-network.js";
import type { UndoStack } from "./undo-stack.js";
import type { VirtiofsdExit } from "./virtiofsd.js";

/** The adopted VM's directory inside the sandbox state dir (short: unix socket paths are limited). */
export const ADOPTED_VM_DIR = "p";

export interface AdoptionContext {
  /** Where the VM's directory must go; its share is <vmDir>/shared. */
  vmDir: string;
  netnsPath?: string;
  /** The pod's cgroup dirs (one per hierarchy) to move the VM into; default this process's own. */
  cgroupDirs?: string[];
  undo: UndoStack;
  /** The adopter times its steps on it (adopt.*). */
  clock: StepClock;
  /** Called before the VM becomes the sandbox's, so a crashed owner's VM is still found (stale.ts). */
  recordPids(p: { vmPid: number; virtiofsdPid: number; virtiofsdPidFile: string; agentSocketPath: string }): Promise<void>;
}

export interface AdoptedVmParts {
  vm: Vm;
  agent: TtrpcClient;
  /** The VM's virtiofsd, watched like one the sandbox started (pod-watch.ts). */
  virtiofsd: AdoptedHelperProcess;
  /**
   * The pod network's host side (tap moved into the pod netns, tc mirror), still being set up when
   * the VM half is done: the guest's own set-up (CreateSandbox) runs meanwhile. It resolves
   * undefined for a pod without a netns. It pushes undo steps until it settles: the sandbox waits
   * for it to settle before unwinding.
   */
  net: Promise<PodNetwork | undefined>;
  /**
   * What the guest is told about the pod network, known before `net` is done (the pod netns was
   * read before the take): UpdateNetwork goes right after CreateSandbox, beside the host side,
   * instead of after it. Undefined for a pod without a netns.
   */
  guestNetwork?: GuestNetworkView;
}

/** A helper process the sandbox did not start: its pid, its end, and a way to stop it. */
export interface AdoptedHelperProcess {
  readonly pid: number | undefined;
  readonly exited: Promise<VirtiofsdExit>;
  stop(): Promise<void>;
}

export type VmAdopter = (ctx: AdoptionContext) => Promise<AdoptedVmParts>;
