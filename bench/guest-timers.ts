// Guest timer benchmark: prints figures, asserts nothing. Boots the real guest kernel with busybox
// sh as PID 1 running a fixed script, per variant (kernel parameters) and vCPU count, variants taking
// turns round by round so host load hits all alike. The guest prints markers on its console; the
// host stamps each with its wall clock and QEMU's CPU time (/proc/PID/stat), so the figures are:
// QEMU CPU per second of an idle guest, wall and QEMU CPU per iteration of a loop of 10 ms sleeps
// (one per vCPU at once), how long a guest `sleep 2` takes by the host's clock, and the guest's
// timer interrupts per CPU (/proc/interrupts: LOC = local APIC timer, or the broadcast's IPIs when
// the local APIC timer is off; IRQ 0 = the PIT). Written for the `nolapic_timer` decision (docs/guest.md).
// Usage: see USAGE below (`node dist/bench/guest-timers.js --help`).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { loadGuestAssets, type GuestAssets } from "../src/guest/assets.js";
import { QemuHypervisor } from "../src/hypervisor/qemu/index.js";
import { processCpuSeconds } from "../src/util/proc-sched.js";
import { busyboxPid1Cmdline, vmConfig } from "../test/integration/vm-support.js";
import { exitWithUsage, intOption, parseBenchArgs, UsageError } from "./lib/args.js";
import { figuresLine, median } from "./lib/figures.js";

const USAGE = `usage: node dist/bench/guest-timers.js [--rounds N] [--variants V1,V2] [--vcpus 1,2] [--idle-s S] [--loops N] [--json]

Boots the guest kernel (assets from KATA_TS_ASSETS_DIR or the installed ones) with busybox sh as
PID 1 under TCG and prints, per variant and vCPU count (medians over rounds): idle QEMU CPU
(ms per s), a loop of N \`usleep 10000\` on every vCPU at once (wall and QEMU CPU per iteration),
a guest \`sleep 2\` by the host's clock, and the guest's timer interrupts per CPU.

  --rounds N     boots per variant and vCPU count (default 3)
  --variants L   comma-separated kernel parameter sets: default, or P1+P2 added (default: default,nolapic_timer);
                 the item traits:none boots as for a kernel the VMM knows nothing about (no preset
                 APIC timer period, ACPI unless acpi=off is added), e.g. traits:none+acpi=off
  --vcpus L      comma-separated vCPU counts (default 1,2)
  --idle-s S     idle window in seconds (default 20)
  --loops N      10 ms sleeps per vCPU (default 200)
  --diag         also print the guest's kernel log lines and /proc/timer_list lines about its timers
  --json         end with one line {"figures": {...}} (keys <variant>_<vcpus>cpu_<figure>)
  --help         this text`;

interface Mark { wallMs: number; cpuMs: number; text: string }

interface Run {
  idleCpuMsPerS: number;
  loopWallMsPerIter: number;
  loopCpuMsPerIter: number;
  sleep2WallMs: number;
  interrupts: string;
  /** The guest's kernel log lines and /proc/timer_list lines about its timers (--diag). */
  log: string;
}

/** The guest's script (it travels base64-encoded on the kernel command line, which takes no spaces). */
function script(idleS: number, loops: number): string {
  const loop = `i=0; while [ $i -lt ${loops} ]; do usleep 10000; i=$((i+1)); done`;
  return [
    "mount -t proc p /proc",
    "echo KT:boot $(nproc)",
    "sleep 1",
    "echo KT:idle0",
    `sleep ${idleS}`,
    "echo KT:idle1",
    `n=$(nproc); c=0; while [ $c -lt $n ]; do taskset $((1<<c)) sh -c '${loop}' & c=$((c+1)); done; wait`,
    "echo KT:loop1",
    "sleep 2",
    "echo KT:sleep2",
    "grep -E 'LOC|^ *0:|CAL|TIMER' /proc/interrupts | tr -s ' ' | sed 's/^/KT:irq /'",
    "dmesg | grep -iE 'APIC timer|calibrat|clockevent|clocksource|broadcast|tsc' | tr -s ' ' | sed 's/^/KT:log /'",
    "grep -E 'Tick Device|^Clock Event Device|mode:' /proc/timer_list | tr -s ' ' | sed 's/^/KT:log /'",
    "echo KT:end",
    // The UART drains the console after echo returns: give it time before the reset.
    "sleep 1",
    "reboot -f",
  ].join("; ");
}

async function runOnce(hv: QemuHypervisor, guestAssets: GuestAssets, root: string, id: string, items: string[], vcpus: number, idleS: number, loops: number): Promise<Run> {
  const extra = items.filter((p) => p !== "traits:none");
  let guest = guestAssets;
  if (items.includes("traits:none")) {
    const { kernelTraits: _, ...rest } = guestAssets;
    guest = rest;
  }
  // sh -c "echo B64 | base64 -d | sh" with ${IFS} for the spaces: the kernel's parameters have none.
  const encoded = Buffer.from(script(idleS, loops)).toString("base64");
  const cmdline = busyboxPid1Cmdline(guest, "sh", ["-c", `echo\${IFS}${encoded}|base64\${IFS}-d|sh`]);
  const initArgs = cmdline.indexOf("--");
  const params = [...cmdline.slice(0, initArgs), "quiet", ...extra, ...cmdline.slice(initArgs)];
  const vm = await hv.create(vmConfig(guest, root, id, { vcpus, kernelCmdline: params }));
  await vm.start();
  const marks = new Map<string, Mark>();
  try {
    const deadline = Date.now() + (idleS + 240) * 1000;
    let seen = 0;
    let text = "";
    while (!marks.has("end")) {
      if (Date.now() > deadline) throw new Error(`${id}: the guest did not finish its script (markers: ${[...marks.keys()].join(", ")})`);
      if (vm.state !== "running") throw new Error(`${id}: the VM ended before its script did (markers: ${[...marks.keys()].join(", ")}); console:\n${text.slice(-3000)}`);
      text = await readFile(vm.consoleLogPath, "utf8").catch(() => text);
      const cpuS = await processCpuSeconds(vm.pid);
      const now = performance.now();
      // Whole lines only (a read may end mid-line). A kernel message may share the marker's line (the
      // console is one stream): find "KT:" anywhere.
      const lines = text.slice(0, text.lastIndexOf("\n") + 1).split("\n").map((l) => l.trimEnd()).filter((l) => l.includes("KT:")).map((l) => l.slice(l.indexOf("KT:")));
      for (const line of lines.slice(seen)) {
        const name = line.slice(3).split(" ")[0]!;
        const key = name === "irq" || name === "log" ? `${name}${marks.size}` : name;
        marks.set(key, { wallMs: now, cpuMs: (cpuS ?? 0) * 1000, text: line.slice(3) });
      }
      seen = lines.length;
      await sleep(10);
    }
  } finally {
    await vm.stop({ timeoutMs: 5000 });
  }
  const m = (k: string): Mark => {
    const mark = marks.get(k);
    if (mark === undefined) throw new Error(`${id}: no ${k} marker`);
    return mark;
  };
  const perLoop = loops;
  return {
    idleCpuMsPerS: (m("idle1").cpuMs - m("idle0").cpuMs) / ((m("idle1").wallMs - m("idle0").wallMs) / 1000),
    loopWallMsPerIter: (m("loop1").wallMs - m("idle1").wallMs) / perLoop,
    loopCpuMsPerIter: (m("loop1").cpuMs - m("idle1").cpuMs) / perLoop,
    sleep2WallMs: m("sleep2").wallMs - m("loop1").wallMs,
    interrupts: [...marks.values()].filter((x) => x.text.startsWith("irq")).map((x) => x.text.slice(4)).join(" | "),
    log: [...marks.values()].filter((x) => x.text.startsWith("log")).map((x) => x.text.slice(4)).join("\n  "),
  };
}

async function main(): Promise<void> {
  const values = parseBenchArgs(USAGE, {
    options: {
      rounds: { type: "string", default: "3" },
      variants: { type: "string", default: "default,nolapic_timer" },
      vcpus: { type: "string", default: "1,2" },
      "idle-s": { type: "string", default: "20" },
      loops: { type: "string", default: "200" },
      diag: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const rounds = intOption("rounds", values.rounds, 1);
  const idleS = intOption("idle-s", values["idle-s"], 1);
  const loops = intOption("loops", values.loops, 1);
  const vcpuCounts = values.vcpus.split(",").map((v) => intOption("vcpus", v, 1));
  const variants = values.variants.split(",").filter((v) => v !== "");
  const guest = await loadGuestAssets();
  const hv = await QemuHypervisor.open();
  console.log(`host load average at start: ${loadavg().map((x) => x.toFixed(2)).join(" ")}; guest kernel parameters: ${guest.kernelCmdline.join(" ")}`);
  const root = await mkdtemp(join(tmpdir(), "kata-ts-guest-timers-"));
  const results = new Map<string, Run[]>();
  try {
    for (let r = 0; r < rounds; r++) {
      for (const vcpus of vcpuCounts) {
        for (const v of variants) {
          const extra = v === "default" ? [] : v.split("+");
          const key = `${v}_${vcpus}cpu`;
          const run = await runOnce(hv, guest, root, `t${r}-${vcpus}-${variants.indexOf(v)}`, extra, vcpus, idleS, loops);
          console.log(`round ${r + 1} ${key}: idle ${run.idleCpuMsPerS.toFixed(1)} ms/s, loop ${run.loopWallMsPerIter.toFixed(2)} ms wall ${run.loopCpuMsPerIter.toFixed(2)} ms CPU per iteration, sleep 2 took ${run.sleep2WallMs.toFixed(0)} ms; ${run.interrupts} (load ${loadavg()[0]!.toFixed(1)})`);
          if (values.diag) console.log(`  ${run.log}`);
          results.set(key, [...(results.get(key) ?? []), run]);
        }
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const figures: Record<string, number> = {};
  for (const [key, runs] of results) {
    const f = (pick: (r: Run) => number): number => median(runs.map(pick));
    figures[`${key}_idle_cpu_ms_per_s`] = f((r) => r.idleCpuMsPerS);
    figures[`${key}_loop_wall_ms_per_iter`] = f((r) => r.loopWallMsPerIter);
    figures[`${key}_loop_cpu_ms_per_iter`] = f((r) => r.loopCpuMsPerIter);
    figures[`${key}_sleep2_wall_ms`] = f((r) => r.sleep2WallMs);
    console.log(`${key} (medians of ${runs.length}): idle ${figures[`${key}_idle_cpu_ms_per_s`]!.toFixed(1)} ms/s; loop ${figures[`${key}_loop_wall_ms_per_iter`]!.toFixed(2)} ms wall, ${figures[`${key}_loop_cpu_ms_per_iter`]!.toFixed(2)} ms CPU per iteration; sleep 2: ${figures[`${key}_sleep2_wall_ms`]!.toFixed(0)} ms`);
  }
  console.log(`host load average at end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  if (values.json) console.log(figuresLine(figures));
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) exitWithUsage(USAGE, err.message);
  console.error(err);
  process.exit(1);
});
