// Shared by the stand-in driver tests: a temp root with stand-in guest files (the stand-in checks
// they exist, as a VMM opens them), a VmConfig pointing at them, and the suite's hooks: after the
// file's tests, no stand-in VMM may be left and no request may have deviated from the VMM's API.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { VmConfig } from "../../src/hypervisor/types.js";
import { standin, type Standin, type StandinGuestKind, type StandinKind } from "../harness/vmm-standin/fixture.js";
import type { Fault } from "../harness/vmm-standin/common.js";
import { cleanupRoot, processesMentioning, tempRoot } from "./vm-support.js";

export interface GuestFiles {
  kernel: string;
  initrd: string;
  rootfs: string;
}

export async function guestFiles(root: string): Promise<GuestFiles> {
  const files = { kernel: join(root, "vmlinux"), initrd: join(root, "initrd.cpio"), rootfs: join(root, "rootfs.erofs") };
  for (const f of Object.values(files)) await writeFile(f, "stand-in guest file\n");
  return files;
}

export function standinVmConfig(files: GuestFiles, root: string, id: string, overrides: Partial<VmConfig> = {}): VmConfig {
  return {
    id,
    stateDir: join(root, "vms", id),
    vcpus: 2,
    memoryMiB: 512,
    kernelPath: files.kernel,
    initrdPath: files.initrd,
    rootfsPath: files.rootfs,
    kernelCmdline: ["root=/dev/vda", "rootfstype=erofs", "ro", "init=/sbin/kata-ts-init"],
    accel: "kvm",
    ...overrides,
  };
}

export interface StandinSuite {
  /** The suite's temp root and guest files (set once its before hook ran). */
  readonly root: string;
  readonly files: GuestFiles;
  /** A stand-in VMM binary playing `fault`, checked after the suite. */
  standin(name: string, fault?: Fault, guest?: StandinGuestKind): Promise<Standin>;
}

/** Registers the suite's before/after hooks; `api` names the published API in the failure message. */
export function standinSuite(kind: StandinKind, api: string): StandinSuite {
  let root = "";
  let files: GuestFiles | undefined;
  const standins: Standin[] = [];
  before(async () => {
    root = await tempRoot(kind === "firecracker" ? "vmm-fc" : "vmm-ch");
    files = await guestFiles(root);
  });
  after(async () => {
    const leftovers = await processesMentioning(root);
    const violations = (await Promise.all(standins.map((s) => s.violations()))).flat();
    await cleanupRoot(root);
    assert.deepEqual(leftovers, [], "no stand-in VMM may outlive the tests");
    assert.deepEqual(violations, [], `every request matched the published ${api}`);
  });
  return {
    get root() {
      return root;
    },
    get files() {
      if (files === undefined) throw new Error("stand-in suite used before its before hook ran");
      return files;
    },
    async standin(name, fault = "none", guest = "emulated") {
      const s = await standin(kind, root, name, fault, guest);
      standins.push(s);
      return s;
    },
  };
}
