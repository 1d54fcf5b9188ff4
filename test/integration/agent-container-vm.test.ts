// Containers in a real VM (QEMU, TCG here) through the host Sandbox: one sandbox, several
// containers and execs, checked as a user sees them; nothing left behind afterwards.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { PassThrough, Readable } from "node:stream";
import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { runSpec, type RunSpecOptions } from "../../src/sandbox/default-spec.js";
import type { SandboxProcess } from "../../src/sandbox/process.js";
import { isKataError } from "../../src/util/errors.js";
import { leftovers, makeVmFixture, type VmFixture } from "./agent-container-vm-fixture.js";

let fx: VmFixture;
let sb: Sandbox;
let n = 0;

before(async () => {
  fx = await makeVmFixture();
  sb = await Sandbox.create({ id: "ctvm", assets: fx.assets, memoryMiB: 512, bootTimeoutMs: 180_000 });
});

after(async () => {
  await sb?.destroy();
  const left = fx ? leftovers(fx.dir, fx.stateRoot) : [];
  await fx?.cleanup();
  assert.deepEqual(left, [], "nothing left after the sandbox is destroyed");
});

function collect(): { stream: PassThrough; text: () => string; bytes: () => Buffer } {
  const stream = new PassThrough();
  const parts: Buffer[] = [];
  stream.on("data", (b: Buffer) => parts.push(b));
  return { stream, text: () => Buffer.concat(parts).toString(), bytes: () => Buffer.concat(parts) };
}

async function runIn(opts: RunSpecOptions, stdin?: string): Promise<{ status: number; out: string; err: string; raw: Buffer }> {
  const id = `c${++n}`;
  const ctr = await sb.createContainer({ id, spec: runSpec(opts), rootfs: fx.rootfs, openStdin: stdin !== undefined });
  try {
    const p = await ctr.start();
    const out = collect();
    const err = collect();
    const pumps = Promise.all([p.pumpOutput("stdout", out.stream), p.pumpOutput("stderr", err.stream)]);
    if (stdin !== undefined) await p.pumpInput(Readable.from([Buffer.from(stdin)]));
    const exit = await p.wait(AbortSignal.timeout(120_000));
    await pumps;
    return { status: exit.status, out: out.text(), err: err.text(), raw: out.bytes() };
  } finally {
    await ctr.delete();
  }
}

void test("vm: exit codes, stdout/stderr apart, 1 MiB intact", async () => {
  assert.equal((await runIn({ args: ["true"] })).status, 0);
  assert.equal((await runIn({ args: ["sh", "-c", "exit 3"] })).status, 3);
  const r = await runIn({ args: ["sh", "-c", "yes 0123456789abcdef | head -c 1048576; echo to-stderr >&2"] });
  assert.equal(r.status, 0);
  assert.equal(r.raw.length, 1048576);
  assert.ok(r.raw.equals(Buffer.from("0123456789abcdef\n".repeat(61681)).subarray(0, 1048576)), "stdout bytes intact");
  assert.equal(r.err, "to-stderr\n");
});

void test("vm: stdin echoed; env, cwd and user honoured; guest kernel is not the host's", async () => {
  const echo = await runIn({ args: ["cat"] }, "hello from stdin\n");
  assert.equal(echo.out, "hello from stdin\n");
  const r = await runIn({ args: ["sh", "-c", "echo $GREETING; pwd; id -u; id -g"], env: ["GREETING=hi vm"], cwd: "/tmp", uid: 1000, gid: 1000 });
  assert.equal(r.out, "hi vm\n/tmp\n1000\n1000\n");
  const uname = await runIn({ args: ["uname", "-r"] });
  assert.equal(uname.out.trim(), fx.assets.kernelRelease);
});

void test("vm: exec into a running container (address space randomized); SIGKILL gives 137, SIGTERM to an exec'd process 143", async () => {
  const ctr = await sb.createContainer({ id: "long", spec: runSpec({ args: ["sleep", "1000"] }), rootfs: fx.rootfs });
  try {
    const init = await ctr.start();
    // Guest cgroup v2 figures, and a live limit change through crun update.
    const before = await sb.agent.stats("long");
    assert.ok(before.memoryUsage > 0n && before.pids >= 1n, `stats: ${JSON.stringify(before, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`);
    await sb.agent.update("long", { memory: { limit: 64 * 1024 * 1024 } });
    assert.equal((await sb.agent.stats("long")).memoryLimit, 64n * 1024n * 1024n);
    const ex = await ctr.exec("probe", { args: ["sh", "-c", "echo exec:$X; pwd; id -u; exit 7"], cwd: "/home", user: { uid: 1000, gid: 1000 }, env: ["PATH=/bin", "X=yes"] }).catch(async (e: unknown) => {
      throw e;
    });
    const out = collect();
    await ex.pumpOutput("stdout", out.stream);
    assert.equal((await ex.wait(AbortSignal.timeout(60_000))).status, 7);
    assert.equal(out.text(), "exec:yes\n/home\n1000\n");
    // Under TCG the agent starts crun without address-space randomization (docs/containers.md);
    // the container's own processes, its init and each exec, still get theirs: the plain Linux
    // personality, and a stack at another address in every process.
    const layout = async (execId: string, cmd: string): Promise<string> => {
      const p = await ctr.exec(execId, { args: ["sh", "-c", cmd], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
      const o = collect();
      await p.pumpOutput("stdout", o.stream);
      assert.equal((await p.wait(AbortSignal.timeout(60_000))).status, 0);
      return o.text();
    };
    assert.equal(await layout("pers", "cat /proc/1/personality /proc/$$/personality"), "00000000\n00000000\n", "init and exec'd process: no ADDR_NO_RANDOMIZE");
    const stackOf = (text: string) => /^(\S+) .*\[stack\]$/m.exec(text)?.[1];
    const stacks = [stackOf(await layout("maps1", "cat /proc/$$/maps")), stackOf(await layout("maps2", "cat /proc/$$/maps"))];
    assert.ok(stacks[0] !== undefined && stacks[1] !== undefined && stacks[0] !== stacks[1], `exec'd processes get randomized stacks: ${stacks.join(" ")}`);
    const sleeper = await ctr.exec("sleeper", { args: ["sleep", "1000"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
    await sleeper.signal(15);
    assert.equal((await sleeper.wait(AbortSignal.timeout(60_000))).status, 143);
    await init.signal(9);
    assert.equal((await init.wait(AbortSignal.timeout(60_000))).status, 137);
  } finally {
    await ctr.delete();
  }
});

void test("vm: two containers share the one VM (same boot id)", async () => {
  const a = await runIn({ args: ["cat", "/proc/sys/kernel/random/boot_id"] });
  const b = await runIn({ args: ["cat", "/proc/sys/kernel/random/boot_id"] });
  assert.match(a.out, /^[0-9a-f-]{36}\n$/);
  assert.equal(a.out, b.out);
  assert.equal(a.out.trim(), (await sb.agent.version()).bootId);
  // Two at once, too.
  const c1 = await sb.createContainer({ id: "par1", spec: runSpec({ args: ["sleep", "1000"] }), rootfs: fx.rootfs });
  const c2 = await sb.createContainer({ id: "par2", spec: runSpec({ args: ["cat", "/proc/sys/kernel/random/boot_id"] }), rootfs: fx.rootfs });
  try {
    await c1.start();
    const p2 = await c2.start();
    const out = collect();
    await p2.pumpOutput("stdout", out.stream);
    assert.equal(out.text(), a.out);
    assert.equal(c1.state, "running");
  } finally {
    await c1.delete();
    await c2.delete();
  }
});

void test("vm: a file written to a shared volume appears on the host", async () => {
  const vol = join(fx.dir, "volume");
  await mkdir(vol);
  const r = await runIn({ args: ["sh", "-c", "echo written-in-guest > /data/out.txt; ls /data"], volumes: [[vol, "/data"]] });
  assert.equal(r.status, 0);
  assert.equal(await readFile(join(vol, "out.txt"), "utf8"), "written-in-guest\n");
});

void test("vm: shared files: the guest keeps a file's cached pages across opens while its size and mtime stay; a host change shows within seconds", async () => {
  const vol = join(fx.dir, "cached-volume");
  await mkdir(vol);
  const file = join(vol, "f");
  await writeFile(file, "one\n");
  const fixedTime = 1_700_000_000; // whole seconds: restored exactly below (a Date would lose the ns)
  await utimes(file, fixedTime, fixedTime);
  const ctr = await sb.createContainer({ id: "cachec", spec: runSpec({ args: ["sleep", "1000"], volumes: [[vol, "/data"]] }), rootfs: fx.rootfs });
  let k = 0;
  const cat = async (): Promise<string> => {
    const p = await ctr.exec(`cat${++k}`, { args: ["cat", "/data/f"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
    const o = collect();
    await p.pumpOutput("stdout", o.stream);
    assert.equal((await p.wait(AbortSignal.timeout(60_000))).status, 0);
    return o.text();
  };
  try {
    await ctr.start();
    assert.equal(await cat(), "one\n");
    // Same size, mtime put back: nothing tells the guest the data changed, so it keeps its pages
    // (virtio-fs cache=always). This is what lets each exec reuse the image's binaries in guest
    // memory; with cache=auto every open dropped them (docs/containers.md).
    await writeFile(file, "two\n");
    await utimes(file, fixedTime, fixedTime);
    await sleep(1500); // past the 1 s attribute timeout: the guest has looked at the attributes again
    assert.equal(await cat(), "one\n", "cached pages kept while size and mtime are unchanged");
    // A real change (new mtime and size) reaches the guest once its attributes expire (1 s).
    await writeFile(file, "three\n");
    const deadline = Date.now() + 30_000;
    let seen = await cat();
    while (seen !== "three\n" && Date.now() < deadline) {
      await sleep(500);
      seen = await cat();
    }
    assert.equal(seen, "three\n", "a host-side change is seen by a new reader in the guest");
  } finally {
    await ctr.delete();
  }
});

void test("vm: a container over its memory limit is OOM-killed and the OOM event names it", async () => {
  const oom = sb.agent.nextOom(AbortSignal.timeout(180_000));
  const r = await runIn({ args: ["sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived"], memoryLimitBytes: 32 * 1024 * 1024 });
  assert.notEqual(r.out, "survived\n");
  assert.equal(await oom, `c${n}`);
});

void test("vm: terminal mode gives the process a tty", async (t) => {
  const ctr = await sb.createContainer({ id: "tty", spec: runSpec({ args: ["sh", "-c", "tty; exit 4"], terminal: true }), rootfs: fx.rootfs, openStdin: true });
  try {
    let p: SandboxProcess;
    try {
      p = await ctr.start();
    } catch (err) {
      if (isKataError(err, "NOT_FOUND")) {
        t.skip("the guest image has no util-linux script (needed for terminals)");
        return;
      }
      throw err;
    }
    const out = collect();
    await p.pumpOutput("stdout", out.stream);
    assert.match(out.text(), /\/dev\/pts\/0/);
    assert.equal((await p.wait(AbortSignal.timeout(60_000))).status, 4);
  } finally {
    await ctr.delete();
  }
});
