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
