// `kata-ts run` as a user runs it: a real VM per run, stdio streamed, the container's exit code,
// clear errors for bad input, and a clean teardown also on Ctrl-C (SIGINT).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSpec } from "../../src/sandbox/default-spec.js";
import { cleanupStaleSandbox } from "../../src/sandbox/stale.js";
import { leftovers, useVmFixture } from "./agent-container-vm-fixture.js";

const CLI = fileURLToPath(new URL("../../../bin/kata-ts.js", import.meta.url));
const fx = useVmFixture();

interface Result {
  code: number | null;
  out: string;
  err: string;
}

function kataTs(args: string[], opts: { stdin?: string; onStdout?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, KATA_TS_STATE_DIR: fx().stateRoot }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      opts.onStdout?.(out, child);
    });
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
    else child.stdin.end();
  });
}

void test("run: bad input fails fast with a clear message (no VM)", async () => {
  const noRootfs = await kataTs(["run", "--rootfs", join(fx().dir, "missing"), "--", "true"]);
  assert.equal(noRootfs.code, 1);
  assert.match(noRootfs.err, /rootfs .*missing does not exist/);
  const noCmd = await kataTs(["run", "--rootfs", fx().rootfs]);
  assert.equal(noCmd.code, 2);
  assert.match(noCmd.err, /missing command/);
  const badBundle = await kataTs(["run", "--bundle", join(fx().dir, "nobundle")]);
  assert.equal(badBundle.code, 1);
  assert.match(badBundle.err, /cannot read .*config\.json/);
  assert.deepEqual(leftovers(fx().dir, fx().stateRoot), []);
});

void test("run: stdout, stderr and the exit code of the container", async () => {
  const r = await kataTs(["run", "--rootfs", fx().rootfs, "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
  assert.equal(r.out, "out\n");
  assert.match(r.err, /^err$/m);
  assert.equal(r.code, 3);
  assert.deepEqual(leftovers(fx().dir, fx().stateRoot), []);
});

void test("run -i: stdin reaches the container; --bundle runs a bundle dir", async () => {
  const r = await kataTs(["run", "-i", "--rootfs", fx().rootfs, "--", "sh", "-c", "cat; echo done"], { stdin: "line one\nline two\n" });
  assert.equal(r.code, 0);
  assert.equal(r.out, "line one\nline two\ndone\n");

  const bundle = join(fx().dir, "bundle");
  await mkdir(bundle);
  const spec = runSpec({ args: ["sh", "-c", "echo from-bundle:$K; exit 5"], env: ["K=v"] });
  spec.root = { path: fx().rootfs, readonly: false };
  await writeFile(join(bundle, "config.json"), JSON.stringify(spec));
  const b = await kataTs(["run", "--bundle", bundle]);
  assert.equal(b.out, "from-bundle:v\n");
  assert.equal(b.code, 5);
  assert.deepEqual(leftovers(fx().dir, fx().stateRoot), []);
});

void test("run: Ctrl-C (SIGINT) tears the VM down and exits 130", async () => {
  let sent = false;
  const r = await kataTs(["run", "--rootfs", fx().rootfs, "--", "sh", "-c", "echo started; sleep 1000"], {
    onStdout: (text, child) => {
      if (!sent && text.includes("started")) {
        sent = true;
        child.kill("SIGINT");
      }
    },
  });
  assert.ok(sent, `the container started (stderr: ${r.err})`);
  assert.equal(r.code, 130, `stderr: ${r.err}`);
  assert.deepEqual(leftovers(fx().dir, fx().stateRoot), []);
});

void test("run: a crashed run (SIGKILL) leaves a state file from which everything is cleaned up", async () => {
  let killed = false;
  const r = await kataTs(["run", "--id", "crashed", "--rootfs", fx().rootfs, "--", "sh", "-c", "echo started; sleep 1000"], {
    onStdout: (text, child) => {
      if (!killed && text.includes("started")) {
        killed = true;
        child.kill("SIGKILL");
      }
    },
  });
  assert.ok(killed, `the container started (stderr: ${r.err})`);
  const left = leftovers(fx().dir, fx().stateRoot);
  assert.ok(left.some((l) => l.includes("qemu")), `the VM outlived its owner: ${left.join("; ")}`);
  process.env.KATA_TS_STATE_DIR = fx().stateRoot;
  await cleanupStaleSandbox("crashed");
  assert.deepEqual(leftovers(fx().dir, fx().stateRoot), []);
});
