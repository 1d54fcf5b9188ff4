// Shared set-up for the in-VM container tests: guest assets (built if stale), a private state
// root, a busybox rootfs, and the leak check every VM test ends with.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { ensureGuestAssets } from "../../src/guest/build.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import { makeBusyboxRootfs } from "./agent-container-fixture.js";

export interface VmFixture {
  dir: string;
  stateRoot: string;
  rootfs: string;
  assets: GuestAssets;
  cleanup(): Promise<void>;
}

export async function makeVmFixture(): Promise<VmFixture> {
  const assets = await ensureGuestAssets(() => undefined);
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-ctvm-"));
  const stateRoot = join(dir, "state");
  process.env.KATA_TS_STATE_DIR = stateRoot;
  const rootfs = join(dir, "rootfs");
  await makeBusyboxRootfs(rootfs);
  return {
    dir,
    stateRoot,
    rootfs,
    assets,
    async cleanup() {
      delete process.env.KATA_TS_STATE_DIR;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** What a sandbox may leave behind: processes naming the dir, mounts under it, state dirs. */
export function leftovers(dir: string, stateRoot: string): string[] {
  const out: string[] = [];
  const ps = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" }).split("\n");
  for (const line of ps) if (line.includes(dir) && /qemu|virtiofsd|kata-ts/.test(line) && !line.includes("node --test")) out.push(`process: ${line.trim()}`);
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (line.includes(dir)) out.push(`mount: ${line}`);
  if (existsSync(stateRoot)) for (const d of readdirSync(stateRoot)) out.push(`state dir: ${d}`);
  return out;
}

/** One fixture for a whole test file: made before its tests, checked for leftovers and removed after them. */
export function useVmFixture(): () => VmFixture {
  let fx: VmFixture | undefined;
  before(async () => {
    fx = await makeVmFixture();
  });
  after(async () => {
    const left = fx ? leftovers(fx.dir, fx.stateRoot) : [];
    await fx?.cleanup();
    assert.deepEqual(left, [], "nothing left after the tests");
  });
  return () => {
    if (fx === undefined) throw new Error("the VM fixture is made in before()");
    return fx;
  };
}
