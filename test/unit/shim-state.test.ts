import { test } from "node:test";
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { MetricsSchema } from "../../src/protocol/gen/io/containerd/cgroups/v2/metrics_pb.js";
import { ProcessState } from "../../src/shim/process-state.js";
import { toMetrics } from "../../src/shim/translate.js";
import { isKataError } from "../../src/util/errors.js";

void test("shim process state: created -> running -> stopped -> deleted", () => {
  const s = new ProcessState("task t");
  assert.equal(s.status, "creating");
  s.created();
  assert.equal(s.status, "created");
  s.apply("start");
  assert.equal(s.status, "running");
  s.check("kill");
  s.apply("exit");
  assert.equal(s.status, "stopped");
  s.apply("delete");
  assert.equal(s.status, "deleted");
});

void test("shim process state: gone is NOT_FOUND (the CRI plugin ignores it), illegal is FAILED_PRECONDITION", () => {
  const s = new ProcessState("task t");
  s.created();
  s.apply("start");
  assert.throws(() => s.apply("start"), (e: unknown) => isKataError(e, "FAILED_PRECONDITION") && e.message.includes("task t"));
  assert.throws(() => s.apply("delete"), (e: unknown) => isKataError(e, "FAILED_PRECONDITION") && e.message.includes("running"));
  s.apply("exit");
  assert.throws(() => s.check("kill"), (e: unknown) => isKataError(e, "NOT_FOUND"));
  assert.throws(() => s.check("io"), (e: unknown) => isKataError(e, "FAILED_PRECONDITION"));
  s.apply("delete");
  for (const op of ["start", "kill", "delete", "io"] as const) {
    assert.throws(() => s.check(op), (e: unknown) => isKataError(e, "NOT_FOUND"), op);
  }
});

void test("shim process state: a created process may be killed, exit, or be deleted without starting", () => {
  const a = new ProcessState("a");
  a.created();
  a.check("kill");
  a.apply("exit");
  assert.equal(a.status, "stopped");
  const b = new ProcessState("b");
  b.created();
  b.apply("delete");
  assert.equal(b.status, "deleted");
});

void test("shim stats: cgroup v2 Metrics Any with the type url the CRI plugin accepts", () => {
  const any = toMetrics({ cpuUsageUsec: 1500, memoryUsageBytes: 4096, memoryLimitBytes: 8192, pidsCurrent: 3, oomKills: 1 });
  assert.equal(any.typeUrl, "io.containerd.cgroups.v2.Metrics");
  const m = fromBinary(MetricsSchema, any.value);
  assert.equal(m.cpu?.usageUsec, 1500n);
  assert.equal(m.memory?.usage, 4096n);
  assert.equal(m.memory?.usageLimit, 8192n);
  assert.equal(m.pids?.current, 3n);
  assert.equal(m.memoryEvents?.oomKill, 1n);
});
