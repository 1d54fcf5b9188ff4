// The gdb remote-protocol framing src/hypervisor/qemu/tcg-flush.ts speaks to QEMU's gdbstub: packets as
// $data#checksum, and QEMU's replies taken apart from its acks and from partial reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gdbPacket, takeGdbPackets } from "../../src/hypervisor/qemu/tcg-flush.js";

void test("gdbPacket frames the data with its checksum (the sum of its bytes mod 256, two hex digits)", () => {
  assert.equal(gdbPacket("s"), "$s#73");
  assert.equal(gdbPacket("D"), "$D#44");
  assert.equal(gdbPacket("?"), "$?#3f");
  assert.equal(gdbPacket(""), "$#00");
});

void test("takeGdbPackets returns whole packets, skips acks, and keeps a partial packet for the next read", () => {
  assert.deepEqual(takeGdbPackets("+$T05thread:01;#07"), { packets: ["T05thread:01;"], rest: "" });
  assert.deepEqual(takeGdbPackets("$T02thread:01;#04+$O"), { packets: ["T02thread:01;"], rest: "$O" });
  assert.deepEqual(takeGdbPackets("$OK#9"), { packets: [], rest: "$OK#9" });
  const split = takeGdbPackets("$OK#9");
  assert.deepEqual(takeGdbPackets(`${split.rest}a`), { packets: ["OK"], rest: "" });
  assert.deepEqual(takeGdbPackets("++"), { packets: [], rest: "" });
});

void test("tbCount reads HMP `info jit`'s translated-block count (0: the cache was flushed)", async () => {
  const { tbCount } = await import("../../src/hypervisor/qemu/tcg-flush.js");
  const info = "Translation buffer state:\ngen code size       190931/41937920\nTB count            318\nTB avg target size  18 max=1478 bytes\n";
  assert.equal(tbCount(info), 318);
  assert.equal(tbCount(info.replace("318", "0")), 0);
  assert.equal(tbCount("no jit here"), undefined);
});

void test("jitMappingRanges finds every mapping of QEMU's split-wx code buffer (MTTCG guard pages split it)", async () => {
  const { jitMappingRanges } = await import("../../src/hypervisor/qemu/tcg-trim.js");
  const maps = [
    "7f3a8f000000-7f3a91800000 r-xs 00000000 00:01 28606                      /memfd:tcg-jit (deleted)",
    "7f3a91800000-7f3a93fff000 rw-s 00000000 00:01 28606                      /memfd:tcg-jit (deleted)",
    "7f3a93fff000-7f3a94000000 ---s 027ff000 00:01 28606                      /memfd:tcg-jit (deleted)",
    "7f3a94000000-7f3a94100000 rw-s 00000000 00:01 28607                      /memfd:qemu-guest-ram (deleted)",
    "7f3a95000000-7f3a97800000 rwxp 00000000 00:00 0 ",
  ].join("\n");
  assert.deepEqual(jitMappingRanges(maps), ["7f3a8f000000-7f3a91800000", "7f3a91800000-7f3a93fff000", "7f3a93fff000-7f3a94000000"]);
  assert.deepEqual(jitMappingRanges(maps.split("\n").slice(3).join("\n")), []);
});

void test("split-wx is rendered into -accel under TCG only when asked for", async () => {
  const { renderCpu } = await import("../../src/hypervisor/qemu/args/cpu.js");
  assert.deepEqual(renderCpu({ accel: "tcg", vcpus: 1, tcgTbSizeMiB: 40, tcgSplitWx: true }).slice(0, 2), ["-accel", "tcg,tb-size=40,split-wx=on"]);
  assert.deepEqual(renderCpu({ accel: "tcg", vcpus: 1, tcgTbSizeMiB: 40 }).slice(0, 2), ["-accel", "tcg,tb-size=40"]);
  assert.deepEqual(renderCpu({ accel: "kvm", vcpus: 1, tcgSplitWx: true }).slice(0, 2), ["-accel", "kvm"]);
});
