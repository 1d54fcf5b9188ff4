// What an idle pod's guest could give back to the host (issue 14). In --vms sandboxes (real VMs,
// through the sandbox layer as bench/exec-phases.ts makes them), a `sleep` container and a few
// execs, then, once guest RAM on the host has settled, one reclaim step at a time in every guest,
// each followed by --settle-s seconds (free page reporting's rounds) and a reading of the
// guest-RAM mapping's Rss on the host, the guest's free memory in blocks too small to report
// (/proc/buddyinfo orders 0-2) and QEMU's CPU for the step. The steps are run from the container,
// whose /proc/sys is writable in this bench only: drop the page cache, compact memory. Then the
// cost of the drop: an exec's QEMU CPU and a re-read of the container's busybox (virtio-fs) after
// it, against the same before it.
// Usage: see USAGE below (`node dist/bench/guest-idle.js --help`).
import { readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { runSpec } from "../src/sandbox/default-spec.js";
import { Sandbox } from "../src/sandbox/sandbox.js";
import { readRecord } from "../src/sandbox/state-file.js";
import { loadGuestAssets, type GuestAssets } from "../src/guest/assets.js";
import { assetsDir } from "../src/util/paths.js";
import { openSandboxScratch } from "./lib/sandbox-scratch.js";
import { processThreadsCpuMs } from "../src/util/proc-sched.js";
import { checkOptions, intOption, parseBenchArgs } from "./lib/args.js";
import { median } from "./lib/figures.js";
import { mappingResidentKiB } from "./lib/vmm-memory.js";

const USAGE = `usage: node dist/bench/guest-idle.js [--vms N] [--settle-s S] [--params P] [--json]   (as root)

Boots N VMs with a sleep container each and a few execs; once guest RAM settled, in every guest:
drop the page cache, then compact memory, each followed by S seconds; prints the guest-RAM
mapping's Rss on the host after each step, what the guest holds free in blocks under 32 KiB, the
QEMU CPU of each step and of an exec / a busybox re-read before and after the drop.

  --vms N        VMs at once (default 2)
  --settle-s S   seconds after each step (default 20)
  --params P     extra guest kernel parameters, space-separated (e.g. "kata_ts.memory_report=45":
                 the agent then prints its heap and the guest's meminfo, shown at the end)
  --idle-s S     after the steps, leave the VMs idle S seconds more and read again (default 0)
  --json         end with one line {"figures": {...}}
  --help         this text`;

const argv = parseBenchArgs(USAGE, {
  options: {
    vms: { type: "string", default: "2" },
    "settle-s": { type: "string", default: "20" },
    "idle-s": { type: "string", default: "0" },
    params: { type: "string", default: "" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
const opts = checkOptions(USAGE, () => ({
  vms: intOption("vms", argv.vms, 1),
  settleS: intOption("settle-s", argv["settle-s"], 1),
  idleS: intOption("idle-s", argv["idle-s"], 0),
}));

const MEMORY_MIB = 512;

class Collect extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

type Container = Awaited<ReturnType<Sandbox["createContainer"]>>;
interface Vm { sb: Sandbox; qemu: number; c: Container }

async function run(vm: Vm, script: string): Promise<string> {
  const p = await vm.c.exec(`x${Math.random().toString(36).slice(2, 8)}`, { args: ["sh", "-c", script], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] });
  const out = new Collect();
  const err = new Collect();
  const [, , st] = await Promise.all([p.pumpOutput("stdout", out), p.pumpOutput("stderr", err), p.wait()]);
  if (st.status !== 0) throw new Error(`${script} exited ${st.status}: ${err.text}`);
  return out.text;
}

/** Free KiB in blocks of order 0-2 (under 32 KiB: free page reporting at order 3 never reports them). */
function smallFreeKiB(buddyinfo: string): number {
  let pages = 0;
  for (const line of buddyinfo.split("\n")) {
    const counts = line.split(/\s+/).slice(4).map(Number);
    pages += (counts[0] ?? 0) + 2 * (counts[1] ?? 0) + 4 * (counts[2] ?? 0);
  }
  return pages * 4;
}

const meminfoKiB = (text: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);

async function reading(vms: Vm[], label: string, figures: Record<string, number[]>): Promise<void> {
  for (const vm of vms) {
    const rss = (await mappingResidentKiB(vm.qemu, MEMORY_MIB * 1024)) / 1024;
    const text = await run(vm, "cat /proc/meminfo /proc/buddyinfo");
    const small = smallFreeKiB(text.slice(text.indexOf("Node ")));
    (figures[`${label}_guest_ram_mib`] ??= []).push(rss);
    (figures[`${label}_cached_mib`] ??= []).push(meminfoKiB(text, "Cached") / 1024);
    (figures[`${label}_small_free_mib`] ??= []).push(small / 1024);
    console.log(`${vm.sb.id} ${label}: guest RAM on host ${rss.toFixed(1)} MiB; guest Cached ${(meminfoKiB(text, "Cached") / 1024).toFixed(1)} MemFree ${(meminfoKiB(text, "MemFree") / 1024).toFixed(1)} free under 32 KiB ${(small / 1024).toFixed(1)} AnonPages ${(meminfoKiB(text, "AnonPages") / 1024).toFixed(1)} Slab ${(meminfoKiB(text, "Slab") / 1024).toFixed(1)}`);
  }
}

async function timedStep(vms: Vm[], label: string, script: string, figures: Record<string, number[]>): Promise<void> {
  for (const vm of vms) {
    const c0 = await processThreadsCpuMs(vm.qemu);
    await run(vm, script);
    (figures[`${label}_cpu_ms`] ??= []).push((await processThreadsCpuMs(vm.qemu)) - c0);
  }
}

async function main(): Promise<void> {
  const scratch = await openSandboxScratch("guest-idle");
  const { dir, rootfs, sandboxes } = scratch;
  const figures: Record<string, number[]> = {};
  try {
    const base = await loadGuestAssets(assetsDir());
    const assets: GuestAssets = { ...base, kernelCmdline: [...base.kernelCmdline, ...argv.params.split(/\s+/).filter((p) => p !== "")] };
    const vms: Vm[] = [];
    for (let i = 0; i < opts.vms; i++) {
      const id = `bench-guest-idle-${process.pid}-${i}`;
      const sb = await Sandbox.create({ id, memoryMiB: MEMORY_MIB, bootTimeoutMs: 300_000, assets });
      sandboxes.push(sb);
      const qemu = (await readRecord(join(dir, "state", id, "state.json"))).vmPid;
      if (qemu === undefined) throw new Error(`sandbox ${id} has no QEMU pid`);
      const spec = runSpec({ args: ["sleep", "100000"] });
      // This bench's container may write /proc/sys (drop_caches, compact_memory): a real pod's may not.
      spec.linux!.readonlyPaths = spec.linux!.readonlyPaths!.filter((p) => p !== "/proc/sys");
      const c = await sb.createContainer({ id: "long", spec, rootfs });
      await c.start();
      vms.push({ sb, qemu, c });
    }
    for (const vm of vms) for (let k = 0; k < 3; k++) await run(vm, "ls / >/dev/null; cat /etc/passwd >/dev/null");
    await sleep(opts.settleS * 1000);
    await reading(vms, "settled", figures);
    await timedStep(vms, "exec_before_drop", "true", figures);
    await timedStep(vms, "reread_before_drop", "cat /bin/busybox >/dev/null", figures);
    await sleep(opts.settleS * 1000);
    await reading(vms, "settled_again", figures);
    await timedStep(vms, "drop", "echo 1 > /proc/sys/vm/drop_caches", figures);
    await sleep(opts.settleS * 1000);
    await reading(vms, "after_drop", figures);
    // The project's kernel has no CONFIG_COMPACTION: then there is no compact_memory to write.
    if ((await run(vms[0]!, "test -e /proc/sys/vm/compact_memory && echo yes || echo no")).trim() === "yes") {
      await timedStep(vms, "compact", "echo 1 > /proc/sys/vm/compact_memory", figures);
      await sleep(opts.settleS * 1000);
      await reading(vms, "after_compact", figures);
    } else console.log("no /proc/sys/vm/compact_memory in the guest (kernel without CONFIG_COMPACTION): compaction not measured");
    await timedStep(vms, "exec_after_drop", "true", figures);
    await timedStep(vms, "reread_after_drop_first", "echo 1 > /proc/sys/vm/drop_caches; cat /bin/busybox >/dev/null", figures);
    await timedStep(vms, "reread_after_drop_second", "cat /bin/busybox >/dev/null", figures);
    if (opts.idleS > 0) {
      await sleep(opts.idleS * 1000);
      await reading(vms, "idle", figures);
    }
    // The agent's own lines about memory (kata_ts.memory_report=N).
    for (const vm of vms) {
      const log = await readFile(join(dir, "state", vm.sb.id, "vm", "console.log"), "utf8").catch(() => "");
      for (const line of log.split("\n")) if (/memory \(kB\)/.test(line)) console.log(`${vm.sb.id} console: ${line.trim()}`);
    }
  } finally {
    await scratch.close();
  }
  const medians = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Math.round(median(v) * 100) / 100]));
  console.log(`(${opts.vms} VMs, load average at the end ${loadavg()[0]!.toFixed(1)})`);
  for (const [k, v] of Object.entries(medians)) console.log(`${k.padEnd(34)} ${v}`);
  if (argv.json) console.log(JSON.stringify({ figures: medians }));
}

await main();
