// Giving an idle VM's TCG translation cache back to the host (src/hypervisor/qemu/tcg-trim.ts,
// src/sandbox/tcg-idle-trimmer.ts), on a real QEMU (TCG, split-wx) and the real guest: the idle
// trimmer frees the cache's pages, and the guest keeps working through many trims, also trims made
// while it runs code. One sandbox with 2 vCPUs (MTTCG: the buffer is cut into regions, one set per
// vCPU thread), reused by every test; nothing left afterwards. Booted as by default, it also shows
// that an agent without its own cgroup declines an idle reclaim.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { runSpec } from "../../src/sandbox/default-spec.js";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import { canTrimTcgCache, type TcgCacheTrimmable, type Vm } from "../../src/hypervisor/types.js";
import { trimSocketName } from "../../src/hypervisor/qemu/tcg-trim.js";
import type { SandboxContainer } from "../../src/sandbox/container.js";
import { leftovers, makeVmFixture, type VmFixture } from "./agent-container-vm-fixture.js";
import { AGENT_CGROUP_PARAM } from "../../src/protocol/contract/guest.js";
import { isKataError } from "../../src/util/errors.js";

let fx: VmFixture;
let sb: Sandbox | undefined;

before(async () => {
  fx = await makeVmFixture();
  sb = await Sandbox.create({
    id: "tcgtrim",
    assets: fx.assets,
    memoryMiB: 512,
    vcpus: 2,
    accel: "tcg",
    bootTimeoutMs: 300_000,
    hypervisor: await QemuHypervisor.open({ tcgSplitWx: true }),
    // A short window so the test need not wait a minute; the default policy otherwise.
    tcgIdleTrim: { idleWindowMs: 3000, sampleMs: 500 },
  });
});

after(async () => {
  await sb?.destroy();
  const left = fx ? leftovers(fx.dir, fx.stateRoot) : [];
  await fx?.cleanup();
  assert.deepEqual(left, [], "nothing left after the sandbox is destroyed");
});

function trimmable(): Vm & TcgCacheTrimmable {
  const vm = sb?.vm;
  assert.ok(vm !== undefined && canTrimTcgCache(vm), "the sandbox's QEMU VM can trim its TCG cache");
  return vm;
}

/** Resident KiB of QEMU's code-buffer memfd, summed over its mappings (PSS: the two mappings share the pages). */
function jitPssMiB(pid: number): number {
  let inJit = false;
  let kib = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inJit = line.endsWith("/memfd:tcg-jit (deleted)");
    else if (inJit && line.startsWith("Pss:")) kib += Number(line.split(/\s+/)[1]);
  }
  return kib / 1024;
}

async function execEcho(ctr: SandboxContainer, id: string, script: string): Promise<string> {
  const p = await ctr.exec(id, { args: ["sh", "-c", script], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
  const out = new PassThrough();
  let text = "";
  out.on("data", (b: Buffer) => (text += b.toString()));
  await p.pumpOutput("stdout", out);
  assert.equal((await p.wait(AbortSignal.timeout(120_000))).status, 0, `exec ${id} exits 0`);
  return text;
}

void test("a VM booted as by default (no tcg_idle_reclaim_agent): its agent shares the root cgroup and declines a reclaim, naming the parameter", async () => {
  const s = sb;
  assert.ok(s !== undefined);
  await assert.rejects(s.agent.reclaimIdleMemory(60_000), (e: unknown) => isKataError(e, "FAILED_PRECONDITION") && e.message.includes(AGENT_CGROUP_PARAM));
});

void test("tcg trim: an idle VM's translation cache is given back by the idle trimmer", async () => {
  const vm = trimmable();
  const pid = vm.pid;
  assert.ok(pid !== undefined);
  assert.ok(readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("split-wx=on"), "QEMU runs with split-wx");
  const full = jitPssMiB(pid);
  assert.ok(full > 20, `the boot filled the cache: ${full.toFixed(1)} MiB resident`);
  for (let i = 0; i < 240 && (sb?.tcgTrims ?? 0) === 0; i++) await sleep(500);
  assert.ok((sb?.tcgTrims ?? 0) >= 1, "the idle VM was trimmed within 2 minutes");
  const trimmed = jitPssMiB(pid);
  assert.ok(trimmed < full / 4, `most of the cache was given back: ${full.toFixed(1)} -> ${trimmed.toFixed(1)} MiB`);
  assert.equal(existsSync(join(vm.stateDir, trimSocketName)), false, "the gdbstub socket is gone after the trim");
  assert.equal((await sb?.agent.version())?.bootId.length, 36, "the agent answers after the trim");
});

void test("tcg trim: a container and 20 execs through trims, also trims made while the guest runs code", async () => {
  const s = sb;
  assert.ok(s !== undefined);
  const vm = trimmable();
  const ctr = await s.createContainer({ id: "c", spec: runSpec({ args: ["sleep", "1000"] }), rootfs: fx.rootfs });
  try {
    await ctr.start();
    let trims = 0;
    for (let i = 0; i < 20; i++) {
      if (i % 4 === 0) {
        const r = await vm.trimTcgCache(10_000);
        assert.ok(r.afterBytes < 8 * 1024 * 1024, `trim ${trims}: ${r.beforeBytes} -> ${r.afterBytes} bytes held`);
        trims++;
      }
      assert.equal(await execEcho(ctr, `e${i}`, `echo exec-${i}`), `exec-${i}\n`);
    }
    // Trims while an exec computes (the guest's code hot in the cache, both vCPUs running).
    let busyDone = false;
    const busy = execEcho(ctr, "busy", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo $i").finally(() => (busyDone = true));
    let duringBusy = 0;
    for (let k = 0; k < 3; k++) {
      await sleep(300);
      await vm.trimTcgCache(10_000);
      trims++;
      if (!busyDone) duringBusy++;
    }
    assert.equal(await busy, "300000\n", "a loop the trims cut through counted right");
    assert.ok(duringBusy >= 2, `trims made while the loop ran: ${duringBusy}`);
    assert.ok(trims >= 8);
    assert.equal(await execEcho(ctr, "after", "cat /proc/sys/kernel/random/boot_id"), `${(await s.agent.version()).bootId}\n`, "same guest, still up");
  } finally {
    await ctr.delete();
  }
});

void test("tcg trim: a trim cut short resumes the VM; a trim in flight when the sandbox is destroyed neither blocks nor breaks the teardown", async () => {
  const s = sb;
  assert.ok(s !== undefined);
  const vm = trimmable();
  // Cut short at once and a few ms in (what the idle trimmer does when the sandbox goes away).
  for (const afterMs of [0, 5, 15]) {
    const abort = new AbortController();
    const cut = vm.trimTcgCache(10_000, abort.signal).then(
      () => "done",
      (err: unknown) => (err instanceof Error && "code" in err ? String(err.code) : String(err)),
    );
    setTimeout(() => abort.abort(), afterMs);
    assert.match(await cut, /^(done|CANCELLED)$/, `a trim cut short after ${afterMs} ms ends done or CANCELLED`);
    assert.equal((await s.agent.version()).bootId.length, 36, "the guest runs on (the VM was resumed)");
  }
  const stateDir = vm.stateDir;
  const inFlight = vm.trimTcgCache(10_000).then(
    () => "done",
    (err: unknown) => `failed: ${String(err)}`,
  );
  await s.destroy();
  sb = undefined;
  await inFlight;
  assert.equal(existsSync(join(stateDir, trimSocketName)), false, "no gdbstub socket left");
  assert.deepEqual(leftovers(fx.dir, fx.stateRoot), [], "no QEMU, mount or state dir left");
});
