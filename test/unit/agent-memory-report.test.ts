// The agent's after-boot memory report (kata_ts.memory_report=N): parsing of its kernel parameter
// and of the /proc files it summarizes.
import assert from "node:assert/strict";
import test from "node:test";
import { memoryReportDelay, pickFields, topSlabs } from "../../src/agent/memory-report.js";

void test("memory report: off unless the kernel parameter gives a number of seconds", () => {
  assert.equal(memoryReportDelay("root=/dev/vda ro quiet"), undefined);
  assert.equal(memoryReportDelay("quiet kata_ts.memory_report=5 panic=-1\n"), 5);
  assert.equal(memoryReportDelay("kata_ts.memory_report=0"), 0);
  assert.equal(memoryReportDelay("kata_ts.memory_report=soon"), undefined);
  assert.equal(memoryReportDelay("kata_ts.memory_report=-1"), undefined);
});

void test("memory report: picks the named fields of a /proc key: value file, in the asked order, skipping absent ones", () => {
  const meminfo = "MemTotal:         499236 kB\nMemFree:          435020 kB\nCached:            31584 kB\nSlab:              13780 kB\n";
  assert.equal(pickFields(meminfo, ["Slab", "MemTotal", "Shmem"]), "Slab=13780 MemTotal=499236");
});

void test("memory report: the largest slab caches by pages held", () => {
  const slabinfo = [
    "slabinfo - version: 2.1",
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>",
    "kmalloc-4k          2064   2064   4096    8    8 : tunables    0    0    0 : slabdata    258    258      0",
    "kernfs_node_cache  6816   6816    128   32    1 : tunables    0    0    0 : slabdata    213    213      0",
    "dma-kmalloc-4k         0      0   4096    8    8 : tunables    0    0    0 : slabdata      0      0      0",
  ].join("\n");
  assert.equal(topSlabs(slabinfo), "kmalloc-4k=8256 kernfs_node_cache=852 dma-kmalloc-4k=0");
});
