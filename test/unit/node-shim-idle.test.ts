// The node-level shim keeper's idle time ($KATA_TS_NODE_SHIM_IDLE_S): a bad value is refused by name.
import assert from "node:assert/strict";
import { test } from "node:test";
import { idleExitMsFrom } from "../../src/shim/node-server/keeper.js";

void test("node shim idle: 60 s unless KATA_TS_NODE_SHIM_IDLE_S says otherwise", () => {
  assert.equal(idleExitMsFrom({}), 60_000);
  assert.equal(idleExitMsFrom({ KATA_TS_NODE_SHIM_IDLE_S: "" }), 60_000);
  assert.equal(idleExitMsFrom({ KATA_TS_NODE_SHIM_IDLE_S: "1.5" }), 1500);
  assert.equal(idleExitMsFrom({ KATA_TS_NODE_SHIM_IDLE_S: "0" }), 0);
});

void test("node shim idle: a value that is no number of seconds names the variable and the way out", () => {
  for (const bad of ["-1", "soon", "Infinity"]) {
    assert.throws(() => idleExitMsFrom({ KATA_TS_NODE_SHIM_IDLE_S: bad }), (err: Error) => err.message.includes("KATA_TS_NODE_SHIM_IDLE_S") && err.message.includes("unset it"));
  }
});
