// linux.cgroupsPath as the shim gets it from containerd, turned into the cgroupfs directory the
// pod's VM joins: cgroupfs paths as they are, systemd-driver paths where systemd puts that unit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { cgroupDirsByCpuOf, cgroupDirsOf, cgroupfsPath } from "../../src/sandbox/host-cgroup.js";

void test("cgroupfs paths are used as they are", () => {
  assert.equal(cgroupfsPath("/kubepods/besteffort/pod1/abc"), "/kubepods/besteffort/pod1/abc");
  assert.equal(cgroupfsPath("/a/../b"), undefined, "no climbing out");
});

void test("systemd-driver paths nest the slice by its dashes and name the scope <prefix>-<name>.scope", () => {
  // What containerd 1.6 CRI makes of kubelet's systemd-driver cgroupParent for a pod sandbox.
  assert.equal(
    cgroupfsPath("kubepods-besteffort-pod1f2e.slice:cri-containerd:0123abcd"),
    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e.slice/cri-containerd-0123abcd.scope",
  );
  assert.equal(cgroupfsPath("system.slice:docker:abc"), "/system.slice/docker-abc.scope");
  assert.equal(cgroupfsPath(":cri-containerd:abc"), "/cri-containerd-abc.scope", "no slice: the root");
  assert.equal(cgroupfsPath("-.slice:p:abc"), "/p-abc.scope", "the root slice");
  assert.equal(cgroupfsPath("a.slice::abc"), "/a.slice/abc.scope", "no prefix");
  assert.equal(cgroupfsPath("a.slice:p:b-c.slice"), "/a.slice/b-c.slice", "a name that is a slice is used as is");
});

void test("malformed systemd-driver paths are refused (nothing is placed)", () => {
  for (const bad of ["", "kubepods", "a.slice:p", "a.slice:p:x:y", "a--b.slice:p:x", "-a.slice:p:x", "a.scope:p:x", "a.slice:p:", "a.slice:p:../x", "a/b.slice:p:x"]) {
    assert.equal(cgroupfsPath(bad), undefined, JSON.stringify(bad));
  }
});

void test("a process's cgroup dirs split into the CPU one(s) and the others: together every hierarchy, once", async () => {
  const all = await cgroupDirsOf(process.pid);
  const { cpu, other } = await cgroupDirsByCpuOf(process.pid);
  assert.deepEqual([...cpu, ...other].sort(), [...all].sort());
  assert.ok(cpu.length >= 1, `a CPU hierarchy (v2's, or v1's cpu controller) is among ${all.join(", ")}`);
  const v1 = (await readFile("/proc/self/cgroup", "utf8")).split("\n").find((l) => /^\d+:([^:]*,)?cpu(,[^:]*)?:/.test(l));
  if (v1 !== undefined) assert.equal(cpu.filter((d) => !d.includes("/unified")).length, 1, `v1: the cpu controller's hierarchy alone (${v1}): ${cpu.join(", ")}`);
});
