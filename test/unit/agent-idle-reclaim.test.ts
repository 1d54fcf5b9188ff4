// The agent's idle reclaim outside a VM (src/agent/idle-reclaim.ts), against a scratch directory
// playing the guest's cgroup root, zram sysfs, /dev/zram0 and /proc files: containers are kept out
// of swap before swap is switched on, the device gets its compressor, size and a valid swap header,
// the agent's own cgroup is what memory.reclaim is written to, and a guest that cannot (root
// cgroup, no zram, no swap accounting) answers FAILED_PRECONDITION having switched nothing on.
// In a real guest: test/integration/idle-reclaim-vm.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DEFAULT_ZRAM_ALGORITHM, IdleReclaimer, parseMmStat, swapHeader, unifiedCgroup, ZRAM_DISK_BYTES, zramAlgorithm, type IdleReclaimPaths } from "../../src/agent/idle-reclaim.js";
import { isKataError } from "../../src/util/errors.js";

interface Guest {
  paths: IdleReclaimPaths;
  /** What happened, in order: "swapon DEV" and the control files written. */
  events: string[];
  reclaimer: IdleReclaimer;
}

async function withGuest(opts: { agentCgroup?: string; zram?: boolean; swapAccounting?: boolean; cmdline?: string; lowOrderMs?: number }, fn: (g: Guest) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-idle-reclaim-"));
  try {
    const paths: IdleReclaimPaths = {
      cgroupRoot: join(dir, "cgroup"),
      reportingOrder: join(dir, "page_reporting_order"),
      zramSys: join(dir, "zram0"),
      zramDev: join(dir, "dev-zram0"),
      procSwaps: join(dir, "swaps"),
      selfCgroup: join(dir, "self-cgroup"),
      cmdline: join(dir, "cmdline"),
    };
    const agent = opts.agentCgroup ?? "/kata-agent";
    await mkdir(join(paths.cgroupRoot, agent), { recursive: true });
    await writeFile(join(paths.cgroupRoot, agent, "memory.current"), "14680064\n");
    await writeFile(join(paths.cgroupRoot, agent, "memory.reclaim"), "");
    await mkdir(join(paths.cgroupRoot, "kata-ts"), { recursive: true });
    if (opts.swapAccounting !== false) await writeFile(join(paths.cgroupRoot, "kata-ts", "memory.swap.max"), "");
    if (opts.zram !== false) {
      await mkdir(paths.zramSys);
      await writeFile(join(paths.zramSys, "disksize"), "0\n");
      await writeFile(join(paths.zramSys, "comp_algorithm"), ""); // a plain file is not truncated by a write, as sysfs needs not be
      await writeFile(join(paths.zramSys, "mm_stat"), "9437184 4194304 4325376 0 4325376 12 0 3 0\n");
      await writeFile(paths.zramDev, Buffer.alloc(8192));
    }
    await writeFile(paths.procSwaps, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    await writeFile(paths.selfCgroup, `0::${agent}\n`);
    await writeFile(paths.reportingOrder, "3\n");
    await writeFile(paths.cmdline, opts.cmdline ?? "console=ttyS0 quiet\n");
    const events: string[] = [];
    const swapOn = async (device: string): Promise<void> => {
      // What a guest would show once swap is on; the containers' limit must be there already.
      events.push(`swapon ${device} (containers swap.max ${(await readFile(join(paths.cgroupRoot, "kata-ts", "memory.swap.max"), "utf8")).trim()})`);
      await writeFile(paths.procSwaps, `Filename\tType\tSize\tUsed\tPriority\n${device}\tpartition\t32764\t0\t-2\n`);
    };
    const reclaimer = new IdleReclaimer({ paths, swapOn, lowOrderMs: opts.lowOrderMs ?? 60_000 });
    await fn({ paths, events, reclaimer });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void test("swapHeader is what mkswap writes: version 1, last page, the SWAPSPACE2 magic at the page's end", () => {
  const h = swapHeader(32 * 1024 * 1024);
  assert.equal(h.length, 4096);
  assert.equal(h.readUInt32LE(1024), 1);
  assert.equal(h.readUInt32LE(1028), 8191);
  assert.equal(h.readUInt32LE(1032), 0);
  assert.equal(h.subarray(4086).toString("latin1"), "SWAPSPACE2");
  assert.ok(h.subarray(0, 1024).every((b) => b === 0), "boot block empty");
});

void test("the small readers: unified cgroup, zram mm_stat, the compressor parameter", () => {
  assert.equal(unifiedCgroup("0::/kata-agent\n"), "/kata-agent");
  assert.equal(unifiedCgroup("0::/\n"), "/");
  assert.equal(unifiedCgroup("1:name=systemd:/\n"), undefined);
  assert.deepEqual(parseMmStat("9437184 4194304 4325376 0 4325376 12 0 3 0\n"), { origBytes: 9437184n, usedBytes: 4325376n });
  assert.equal(zramAlgorithm("console=ttyS0"), DEFAULT_ZRAM_ALGORITHM);
  assert.equal(zramAlgorithm("kata_ts.zram_algorithm=lz4 quiet"), "lz4");
  assert.equal(zramAlgorithm("kata_ts.zram_algorithm=lz4 kata_ts.zram_algorithm=zstd"), "zstd", "the last one wins");
  assert.equal(zramAlgorithm("kata_ts.zram_algorithm=../x"), DEFAULT_ZRAM_ALGORITHM, "not a name: the default");
});

void test("first reclaim: containers kept out of swap, then zram sized with a swap header and switched on, then the agent's cgroup reclaimed", async () => {
  await withGuest({ cmdline: "quiet kata_ts.zram_algorithm=lz4\n" }, async ({ paths, events, reclaimer }) => {
    const r = await reclaimer.reclaim();
    assert.deepEqual(events, [`swapon ${paths.zramDev} (containers swap.max 0)`]);
    assert.equal(await readFile(join(paths.zramSys, "comp_algorithm"), "utf8"), "lz4");
    assert.equal(await readFile(join(paths.zramSys, "disksize"), "utf8"), String(ZRAM_DISK_BYTES));
    const dev = await readFile(paths.zramDev);
    assert.equal(dev.subarray(4086, 4096).toString("latin1"), "SWAPSPACE2");
    assert.equal(dev.readUInt32LE(1028), ZRAM_DISK_BYTES / 4096 - 1);
    assert.equal(await readFile(join(paths.cgroupRoot, "kata-agent", "memory.reclaim"), "utf8"), "14680064", "asked for all of the agent's memory");
    assert.deepEqual(r, { agentBytesBefore: 14680064n, agentBytesAfter: 14680064n, swappedBytes: 9437184n, storedBytes: 4325376n });
    // A second reclaim only reclaims: swap is on already.
    await writeFile(join(paths.cgroupRoot, "kata-agent", "memory.reclaim"), "");
    await reclaimer.reclaim();
    assert.equal(events.length, 1, "swap switched on once");
    assert.equal(await readFile(join(paths.cgroupRoot, "kata-agent", "memory.reclaim"), "utf8"), "14680064");
  });
});

void test("an agent in the root cgroup (an older image) is refused before anything is switched on", async () => {
  await withGuest({ agentCgroup: "/" }, async ({ paths, events, reclaimer }) => {
    await assert.rejects(reclaimer.reclaim(), (err) => isKataError(err, "FAILED_PRECONDITION") && /root cgroup/.test(err.message));
    assert.deepEqual(events, []);
    assert.equal(await readFile(join(paths.zramSys, "disksize"), "utf8"), "0\n");
  });
});

void test("a kernel without zram, or without swap accounting for the containers, answers FAILED_PRECONDITION and never switches swap on", async () => {
  await withGuest({ zram: false }, async ({ events, reclaimer }) => {
    await assert.rejects(reclaimer.reclaim(), (err) => isKataError(err, "FAILED_PRECONDITION") && /zram/.test(err.message));
    assert.deepEqual(events, []);
  });
  await withGuest({ swapAccounting: false }, async ({ paths, events, reclaimer }) => {
    await assert.rejects(reclaimer.reclaim(), (err) => isKataError(err, "FAILED_PRECONDITION") && /containers out of swap/.test(err.message));
    assert.deepEqual(events, []);
    assert.equal(await readFile(join(paths.zramSys, "disksize"), "utf8"), "0\n", "zram left unsized");
  });
});

void test("two reclaims at once share one run", async () => {
  await withGuest({}, async ({ events, reclaimer }) => {
    const [a, b] = await Promise.all([reclaimer.reclaim(), reclaimer.reclaim()]);
    assert.deepEqual(a, b);
    assert.equal(events.length, 1);
  });
});

void test("a reclaim lowers free page reporting's order to 0 while its pages are reported, then puts the order back", async () => {
  // Generous margins: the assertions are about order, not timing (a loaded CI host delays timers).
  // The check inside the second window has 1.4 s to spare, more than a loaded host's stall.
  await withGuest({ lowOrderMs: 2000 }, async ({ paths, reclaimer }) => {
    const order = async (): Promise<string> => (await readFile(paths.reportingOrder, "utf8")).trim().slice(0, 1);
    await reclaimer.reclaim();
    assert.equal(await order(), "0", "single pages reported after the reclaim");
    await sleep(1500);
    await reclaimer.reclaim(); // a second reclaim while it is low keeps it low, and for longer
    await sleep(600); // past the first reclaim's window, inside the second's
    assert.equal(await order(), "0");
    const deadline = Date.now() + 10_000;
    while ((await order()) !== "3" && Date.now() < deadline) await sleep(50);
    assert.equal(await order(), "3", "the order it had is back");
  });
});
