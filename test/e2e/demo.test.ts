// `kata-ts demo` as a newcomer runs it: exit 0, the host's, the runc pod's and the kata-ts pod's
// kernels printed (runc = host, kata-ts = the guest assets' kernel), and nothing left behind: its
// work dir, network namespace, processes and mounts are gone. Ctrl-C while the VM boots stops the
// demo with status 130 and cleans up just the same.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { access } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { loadGuestAssets } from "../../src/guest/assets.js";
import { mountsUnder, processesMentioning } from "../../src/devenv/cleanup.js";

const cliPath = join(import.meta.dirname, "..", "..", "..", "bin", "kata-ts.js");
const exists = (p: string) => access(p).then(() => true, () => false);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runDemo(onStderr?: (text: string, child: ReturnType<typeof spawn>) => void, timeoutMs = 480_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, "demo"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`demo did not finish within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, child);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function assertCleanedUp(stderr: string): Promise<void> {
  const m = /work dir (\S+), network namespace (\S+),/.exec(stderr);
  assert.ok(m, `demo names its work dir and netns:\n${stderr}`);
  const [, dir, netns] = m as unknown as [string, string, string];
  assert.equal(await exists(dir), false, `work dir ${dir} removed`);
  assert.equal(await exists(netns), false, `netns ${netns} removed`);
  assert.deepEqual(await processesMentioning(dir), [], "no containerd, shim, QEMU or virtiofsd left");
  assert.deepEqual(await mountsUnder(dir), [], "no mounts left");
}

void test("kata-ts demo prints the host's, the runc pod's and the kata-ts pod's kernels, and leaves nothing", { timeout: 600_000 }, async () => {
  const assets = await loadGuestAssets();
  const r = await runDemo();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`host +${release().replace(/\./g, "\\.")}\\n`));
  assert.match(r.stdout, new RegExp(`runc pod +${release().replace(/\./g, "\\.")} +\\(same kernel as the host\\)`));
  assert.match(r.stdout, new RegExp(`kata-ts pod +${assets.kernelRelease.replace(/\./g, "\\.")} +\\(its own kernel, in a VM\\)`));
  assert.match(r.stderr, /==> starting a kata-ts pod .*\n/, "progress shown for the slow step");
  await assertCleanedUp(r.stderr);
});

void test("Ctrl-C while the kata-ts pod boots: exit 130 and everything removed", { timeout: 600_000 }, async () => {
  let sent = false;
  const r = await runDemo((text, child) => {
    if (!sent && text.includes("==> starting a kata-ts pod")) {
      sent = true;
      setTimeout(() => child.kill("SIGINT"), 3_000); // mid-boot: shim, QEMU and virtiofsd are up
    }
  });
  assert.ok(sent, r.stderr);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: stopping and cleaning up/);
  assert.match(r.stderr, /cleaning up .*done/s);
  await assertCleanedUp(r.stderr);
});
