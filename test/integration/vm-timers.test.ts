// The guest's timers work on every vCPU as a pod's VM boots (q35 under TCG boots the project's
// kernel with acpi=off and its local APIC timer's period preset, so the kernel neither calibrates
// nor checks that timer against the PIT; a pod's VM has 2 vCPUs): the real kernel with busybox sh
// as PID 1 in a 2-vCPU VM, a `sleep 2` pinned to each vCPU takes its 2 s by the host's clock, each
// vCPU's timer interrupts (local APIC timer, or the PIT's on CPU 0) advance, and every vCPU ticks
// in one-shot mode on its local APIC timer (an idle vCPU then sleeps). With the period preset the
// PIT is not even set up. No upper bound on time: a loaded host stretches it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { QemuHypervisor } from "../../src/hypervisor/qemu/index.js";
import type { GuestAssets } from "../../src/guest/assets.js";
import { tcgDefaultAcpiOff } from "../../src/hypervisor/qemu/args/machine.js";
import { defaultQemuMachine } from "../../src/config/defaults.js";
import { assets, busyboxPid1Cmdline, cleanupRoot, exists, processesMentioning, tempRoot, vmConfig } from "./vm-support.js";

let root: string;
let guest: GuestAssets;

before(async () => {
  guest = await assets();
  root = await tempRoot("vm-timers");
});

after(async () => {
  const leftovers = await processesMentioning(root);
  await cleanupRoot(root);
  assert.deepEqual(leftovers, [], "no QEMU process may outlive the tests");
});

/** Each CPU's timer interrupts: the local APIC timer's (LOC) plus the PIT's (IRQ 0), per CPU. */
function timerInterrupts(lines: readonly string[], cpus: number): number[] {
  const counts = new Array<number>(cpus).fill(0);
  for (const line of lines) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== "LOC:" && fields[0] !== "0:") continue;
    for (let c = 0; c < cpus; c++) counts[c]! += Number(fields[1 + c]);
  }
  return counts;
}

/** /proc/timer_list's tick devices by CPU ("broadcast" for the broadcast one): tick mode (1 one-shot), clock event device and its state (3 one-shot). */
function tickDevices(lines: readonly string[]): Map<string, { tickMode: string; device: string; deviceMode?: string }> {
  const out = new Map<string, { tickMode: string; device: string; deviceMode?: string }>();
  let tickMode = "";
  let cpu = "";
  for (const line of lines.map((l) => l.trim())) {
    if (line.startsWith("Tick Device: mode:")) tickMode = line.split(":").at(-1)!.trim();
    else if (line === "Broadcast device") cpu = "broadcast";
    else if (line.startsWith("Per CPU device:")) cpu = line.split(":").at(-1)!.trim();
    else if (line.startsWith("Clock Event Device:")) out.set(cpu, { tickMode, device: line.slice("Clock Event Device:".length).trim() });
    else if (line.startsWith("mode:") && out.has(cpu)) out.set(cpu, { ...out.get(cpu)!, deviceMode: line.split(":").at(-1)!.trim() });
  }
  return out;
}

// One marker per step; the host stamps each when it appears on the console.
const script = [
  "mount -t proc p /proc",
  "echo KT:cpus $(nproc)",
  "grep -E '^ *(LOC|0):' /proc/interrupts | sed 's/^/KT:irq0 /'",
  "for c in 0 1; do echo KT:sleep-$c; taskset $((1<<c)) sleep 2; echo KT:slept-$c; done",
  "grep -E '^ *(LOC|0):' /proc/interrupts | sed 's/^/KT:irq1 /'",
  "grep -E '^(Tick Device|Per CPU device|Broadcast device|Clock Event Device)|^ mode:' /proc/timer_list | tr -s ' ' | sed 's/^/KT:tl /'",
  "echo KT:end",
  // The UART drains the console after echo returns: give it time before the reset.
  "sleep 1",
  "reboot -f",
].join("; ");

void test("in a 2-vCPU guest a sleep pinned to each vCPU takes its time and both vCPUs take timer interrupts", { timeout: 240_000 }, async (t) => {
  // The kernel's parameters take no spaces: sh -c "echo B64 | base64 -d | sh" with ${IFS}.
  const encoded = Buffer.from(script).toString("base64");
  const params = busyboxPid1Cmdline(guest, "sh", ["-c", `echo\${IFS}${encoded}|base64\${IFS}-d|sh`]);
  const init = params.indexOf("--");
  // quiet as a pod's guest boots (busyboxPid1Cmdline drops it for tests that read the kernel log).
  const hv = await QemuHypervisor.open();
  const vm = await hv.create(vmConfig(guest, root, "timers", { vcpus: 2, kernelCmdline: [...params.slice(0, init), "quiet", ...params.slice(init)] }));
  await vm.start();
  const seenAt = new Map<string, number>();
  let lines = new Map<string, string[]>();
  try {
    const deadline = Date.now() + 200_000;
    while (!seenAt.has("end")) {
      assert.ok(Date.now() < deadline, `the guest's script did not end in 200 s (markers: ${[...seenAt.keys()].join(", ")})`);
      assert.equal(vm.state, "running", `the VM ended early (markers: ${[...seenAt.keys()].join(", ")})`);
      const now = performance.now();
      // The whole log each round (it only grows): the lines by marker, and when each was first seen.
      lines = new Map();
      const text = await readFile(vm.consoleLogPath, "utf8").catch(() => "");
      // Whole lines only: a read may end mid-line.
      for (const line of text.slice(0, text.lastIndexOf("\n") + 1).split("\n")) {
        // A kernel message may share the marker's line (one console stream): not anchored at the start.
        const m = /KT:(\S+) ?(.*)$/.exec(line.trimEnd());
        if (m === null) continue;
        if (!seenAt.has(m[1]!)) seenAt.set(m[1]!, now);
        lines.set(m[1]!, [...(lines.get(m[1]!) ?? []), m[2]!]);
      }
      await sleep(10);
    }
    // unref'd: a pending deadline must not keep the test process alive once the VM ended.
    const exit = await Promise.race([vm.wait(), sleep(60_000, undefined, { ref: false }).then(() => undefined)]);
    assert.equal(exit?.reason, "poweroff", "the guest's reboot -f ends the VM");
  } finally {
    if (vm.state === "running") await vm.stop({ timeoutMs: 5000 });
  }
  assert.deepEqual(lines.get("cpus"), ["2"], "the guest sees both vCPUs");
  for (const c of [0, 1]) {
    const tookMs = seenAt.get(`slept-${c}`)! - seenAt.get(`sleep-${c}`)!;
    t.diagnostic(`sleep 2 on vCPU ${c}: ${tookMs.toFixed(0)} ms by the host's clock`);
    // The host polls the console every 10 ms or so: the first marker may be seen up to that late.
    assert.ok(tookMs >= 1900, `sleep 2 on vCPU ${c} returned after ${tookMs.toFixed(0)} ms`);
  }
  const before = timerInterrupts(lines.get("irq0") ?? [], 2);
  const later = timerInterrupts(lines.get("irq1") ?? [], 2);
  t.diagnostic(`timer interrupts per CPU (LOC + IRQ 0): ${before.join(", ")} -> ${later.join(", ")}`);
  for (const c of [0, 1]) assert.ok(later[c]! > before[c]!, `vCPU ${c} took no timer interrupt while it slept: ${before[c]} -> ${later[c]}`);
  const ticks = tickDevices(lines.get("tl") ?? []);
  t.diagnostic(`tick devices: ${JSON.stringify(Object.fromEntries(ticks))}`);
  for (const c of ["0", "1"]) {
    assert.deepEqual(ticks.get(c), { tickMode: "1", device: "lapic", deviceMode: "3" }, `vCPU ${c} ticks in one-shot mode on its local APIC timer`);
  }
  const traits = guest.kernelTraits === undefined ? {} : { traits: guest.kernelTraits };
  if (tcgDefaultAcpiOff({ machine: defaultQemuMachine, accel: "tcg", kernelParams: guest.kernelCmdline, ...traits })) {
    // The period preset: apic_needs_pit() says no, so no PIT interrupt and no broadcast device.
    const pit = (lines.get("irq1") ?? []).find((l) => /^\s*0:/.test(l));
    assert.equal(pit, undefined, `the PIT is not set up: ${pit}`);
    assert.equal(ticks.get("broadcast")?.device, "<NULL>");
  }
  assert.equal(await exists(vm.stateDir), false, "state dir removed");
});
