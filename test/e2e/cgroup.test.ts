// Host cgroup placement (src/sandbox/host-cgroup.ts) on this host's real hierarchies (cgroup v1
// hybrid here): a process joins a fresh nested cgroupfs path in every mounted hierarchy (cpuset
// seeded so it accepts tasks), and release() moves it back and removes what join created.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { cgroupDirsOf, cgroupHierarchies, joinCgroup } from "../../src/sandbox/host-cgroup.js";

const exists = (p: string) => access(p).then(() => true, () => false);

void test("joinCgroup moves a process into a new nested cgroup everywhere; release puts it back and removes the cgroups", async () => {
  const child = spawn("sleep", ["60"], { stdio: "ignore" });
  const pid = child.pid as number;
  const top = `/kata-ts-cgtest-${randomBytes(4).toString("hex")}`;
  const path = `${top}/sandbox`;
  try {
    const before = (await cgroupDirsOf(pid)).sort();
    const hierarchies = await cgroupHierarchies();
    assert.ok(hierarchies.length > 0);
    const joined = await joinCgroup(path, pid);
    try {
      const expected = hierarchies.map((h) => join(h.mount, path)).sort();
      assert.deepEqual([...joined.dirs].sort(), expected);
      assert.deepEqual((await cgroupDirsOf(pid)).sort(), expected);
      for (const h of hierarchies.filter((x) => x.cpuset)) {
        assert.notEqual((await readFile(join(h.mount, path, "cpuset.cpus"), "utf8")).trim(), "", "cpuset seeded from the parent");
      }
    } finally {
      await joined.release();
    }
    assert.deepEqual((await cgroupDirsOf(pid)).sort(), before, "back where it was");
    for (const h of hierarchies) assert.equal(await exists(join(h.mount, top)), false, `${h.mount}${top} removed`);
  } finally {
    child.kill("SIGKILL");
  }
});

void test("release leaves a cgroup that existed before the join", async () => {
  const child = spawn("sleep", ["60"], { stdio: "ignore" });
  const pid = child.pid as number;
  const top = `/kata-ts-cgtest-${randomBytes(4).toString("hex")}`;
  const outer = await joinCgroup(top, process.pid); // stands in for kubelet's pod cgroup
  try {
    const inner = await joinCgroup(`${top}/sandbox`, pid);
    await inner.release();
    for (const h of await cgroupHierarchies()) {
      assert.equal(await exists(join(h.mount, top, "sandbox")), false);
      assert.equal(await exists(join(h.mount, top)), true, "the pre-existing parent stays");
    }
  } finally {
    child.kill("SIGKILL");
    await outer.release();
  }
  for (const h of await cgroupHierarchies()) assert.equal(await exists(join(h.mount, top)), false);
});
