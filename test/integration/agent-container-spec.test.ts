// The host spec -> guest spec rewrite: what is kept, what is dropped, and why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSpec, toGuestSpec } from "../../src/agent/oci/guest-spec.js";
import { isKataError } from "../../src/util/errors.js";
import { specFor } from "./agent-container-fixture.js";

const opts = { containerId: "c1", rootfs: "/run/kata-ts/shared/containers/c1/rootfs", bindSourceRoots: ["/run/kata-ts/shared"], cgroupsPath: "/kata-ts/c1/ctr" };

void test("guest spec: rootfs, cgroup path, namespaces, devices, hooks and host bind mounts rewritten", () => {
  const host = specFor(["sh"], { env: ["A=1"], cwd: "/w", uid: 7, gid: 8 });
  host.hooks = { prestart: [{ path: "/usr/bin/host-hook" }] };
  host.process!.apparmorProfile = "docker-default";
  host.linux!.namespaces!.push({ type: "ipc", path: "/proc/99/ns/ipc" });
  host.mounts!.push(
    { destination: "/etc/hosts", type: "bind", source: "/var/lib/containerd/x/hosts", options: ["rbind"] },
    { destination: "/data", type: "bind", source: "/run/kata-ts/shared/containers/c1/mounts/0", options: ["rbind", "rw"] },
  );
  const { spec, dropped } = toGuestSpec(host, opts);
  assert.deepEqual(spec.root, { path: opts.rootfs, readonly: false });
  assert.equal(spec.linux?.cgroupsPath, "/kata-ts/c1/ctr");
  assert.equal(spec.linux?.devices, undefined);
  assert.equal(spec.hooks, undefined);
  assert.equal(spec.process?.apparmorProfile, undefined);
  assert.deepEqual(spec.process?.args, ["sh"]);
  assert.deepEqual(spec.process?.env, ["A=1"]);
  assert.deepEqual(spec.process?.user, { uid: 7, gid: 8 });
  assert.deepEqual(spec.linux?.maskedPaths, host.linux?.maskedPaths);
  assert.ok(!spec.linux?.namespaces?.some((n) => n.type === "network" || n.path !== undefined));
  const dests = spec.mounts!.map((m) => m.destination);
  assert.ok(dests.includes("/data") && dests.includes("/proc") && !dests.includes("/etc/hosts"));
  assert.ok(dropped.some((d) => d.includes("/etc/hosts")));
  // The input is not modified.
  assert.equal(host.linux?.cgroupsPath, "/host/only/path");
});

void test("guest spec: the plain Linux personality unless the spec names one (crun then gives the app its address-space randomization back)", () => {
  const plain = toGuestSpec(specFor(["sh"]), opts).spec;
  assert.deepEqual(plain.linux?.personality, { domain: "LINUX" });
  const host = specFor(["sh"]);
  host.linux!.personality = { domain: "LINUX32" };
  assert.deepEqual(toGuestSpec(host, opts).spec.linux?.personality, { domain: "LINUX32" });
});

void test("guest spec: malformed specs are INVALID_ARGUMENT", () => {
  assert.throws(() => parseSpec("{"), (e) => isKataError(e, "INVALID_ARGUMENT"));
  assert.throws(() => parseSpec("[]"), (e) => isKataError(e, "INVALID_ARGUMENT"));
  assert.throws(() => parseSpec(JSON.stringify({ ociVersion: "1", process: { args: ["x"], cwd: "rel", user: { uid: 0, gid: 0 } } })), (e) => isKataError(e, "INVALID_ARGUMENT"));
  assert.throws(() => toGuestSpec({ ociVersion: "1" }, opts), (e) => isKataError(e, "INVALID_ARGUMENT"));
});
