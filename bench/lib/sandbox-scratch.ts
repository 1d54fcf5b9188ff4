// A scratch place for benches that run sandboxes directly, without containerd (vmm-variants,
// tcg-trim, guest-idle): a temp dir holding the sandboxes' state dir (KATA_TS_STATE_DIR) and a
// busybox rootfs for their containers. close() destroys every sandbox the bench pushed (last
// first) and removes the dir; Ctrl-C or SIGTERM does the same before the bench exits.
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { Sandbox } from "../../src/sandbox/sandbox.js";
import { makeBusyboxRootfs } from "../../test/integration/agent-container-fixture.js";

export interface SandboxScratch {
  dir: string;
  /** The sandboxes' state dir: `<dir>/state/<sandbox id>`. */
  stateDir: string;
  /** A busybox rootfs for containers. */
  rootfs: string;
  /** The bench pushes each sandbox it creates here, so that close() destroys it. */
  sandboxes: Sandbox[];
  close(): Promise<void>;
}

/** `name` goes into the temp dir's name (kata-ts-bench-<name>-...). Prints the load average at the start. */
export async function openSandboxScratch(name: string): Promise<SandboxScratch> {
  const dir = await mkdtemp(join(tmpdir(), `kata-ts-bench-${name}-`));
  const stateDir = join(dir, "state");
  process.env.KATA_TS_STATE_DIR = stateDir;
  const sandboxes: Sandbox[] = [];
  const close = async (): Promise<void> => {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    for (const sb of sandboxes.splice(0).reverse()) await sb.destroy().catch((err: unknown) => console.error(err));
    await rm(dir, { recursive: true, force: true });
    delete process.env.KATA_TS_STATE_DIR;
  };
  const onSignal = (): void => void close().finally(() => process.exit(130));
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  console.log(`load average at start ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const rootfs = join(dir, "rootfs");
  try {
    await makeBusyboxRootfs(rootfs);
  } catch (err) {
    await close();
    throw err;
  }
  return { dir, stateDir, rootfs, sandboxes, close };
}
