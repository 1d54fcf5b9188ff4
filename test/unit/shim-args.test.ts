import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { OptionsSchema } from "../../src/protocol/gen/runtimeoptions/v1/api_pb.js";
import { groupIdOf, socketPath, socketUri } from "../../src/shim/address.js";
import { formatShimFlags, parseShimArgs, SERVER_ENV_SET_ENV, START_AT_ENV } from "../../src/shim/flags.js";
import { serverEnv, serverMallocEnv } from "../../src/shim/start.js";
import { podSizing } from "../../src/shim/pod-sizing.js";
import { countCpuList, hostLimits, memTotalMiB, requireFitsHost, type HostLimits } from "../../src/host/limits.js";
import { decodeRuntimeOptionsBytes } from "../../src/shim/runtime-options.js";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { isKataError } from "../../src/util/errors.js";

void test("shim flags: containerd's start argv (Go flag syntax) parses", () => {
  const argv = ["-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "abc", "-debug", "start"];
  const { flags, action } = parseShimArgs(argv);
  assert.equal(action, "start");
  assert.equal(flags.namespace, "k8s.io");
  assert.equal(flags.address, "/run/containerd/containerd.sock");
  assert.equal(flags.publishBinary, "/usr/bin/containerd");
  assert.equal(flags.id, "abc");
  assert.equal(flags.debug, true);
});

void test("shim flags: -f=v, --f v, -debug=false, delete with -bundle", () => {
  const { flags, action, rest } = parseShimArgs(["--namespace", "ns", "-id=x", "-debug=false", "-bundle", "/b", "delete", "extra"]);
  assert.deepEqual([flags.namespace, flags.id, flags.debug, flags.bundle, action, rest], ["ns", "x", false, "/b", "delete", ["extra"]]);
});

void test("shim flags: unknown flags and missing values are errors", () => {
  assert.throws(() => parseShimArgs(["-nope", "start"]), (e: unknown) => isKataError(e, "INVALID_ARGUMENT") && e.message.includes("-nope"));
  assert.throws(() => parseShimArgs(["-id"]), (e: unknown) => isKataError(e, "INVALID_ARGUMENT") && e.message.includes("-id"));
});

void test("shim flags: formatShimFlags round-trips through parseShimArgs", () => {
  const { flags } = parseShimArgs(["-namespace", "n", "-id", "i", "-address", "/a", "-socket", "/s", "-config-path", "/c.toml", "-debug", "serve"]);
  const again = parseShimArgs([...formatShimFlags(flags), "serve"]);
  assert.deepEqual(again.flags, flags);
  assert.equal(again.action, "serve");
});

void test("shim address: sha256 of <address>/<namespace>/<group> under /run/containerd/s", () => {
  const expected = createHash("sha256").update("/run/containerd/containerd.sock/k8s.io/pod1").digest("hex");
  const path = socketPath("/run/containerd/containerd.sock", "k8s.io", "pod1");
  assert.equal(path, `/run/containerd/s/${expected}`);
  assert.equal(socketUri(path), `unix:///run/containerd/s/${expected}`);
  // filepath.Join cleans: a trailing slash in the address does not change the hash.
  assert.equal(socketPath("/run/containerd/containerd.sock/", "k8s.io", "pod1"), path);
});

void test("shim grouping: CRI app containers join their sandbox's shim, everything else gets its own", () => {
  const app = { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sb" };
  assert.equal(groupIdOf("c1", app), "sb");
  assert.equal(groupIdOf("sb", { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "sb" }), "sb");
  assert.equal(groupIdOf("plain", undefined), "plain");
  assert.throws(() => groupIdOf("c2", { "io.kubernetes.cri.container-type": "container" }), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
});

void test("shim runtime options: ConfigPath from start's stdin Any; other types and empty input ignored", () => {
  const opts = create(OptionsSchema, { typeUrl: "io.containerd.kata-ts.v2.options", configPath: "/etc/kata-ts/x.toml" });
  const any = anyPack(OptionsSchema, opts);
  assert.equal(decodeRuntimeOptionsBytes(toBinary(AnySchema, any)).configPath, "/etc/kata-ts/x.toml");
  const bare = create(AnySchema, { typeUrl: "runtimeoptions.v1.Options", value: toBinary(OptionsSchema, opts) });
  assert.equal(decodeRuntimeOptionsBytes(toBinary(AnySchema, bare)).configPath, "/etc/kata-ts/x.toml");
  const runc = create(AnySchema, { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array([8, 1]) });
  assert.equal(decodeRuntimeOptionsBytes(toBinary(AnySchema, runc)).configPath, "");
  assert.equal(decodeRuntimeOptionsBytes(new Uint8Array()).configPath, "");
  assert.throws(() => decodeRuntimeOptionsBytes(new Uint8Array([0xff, 0xff])), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
});

const bigHost: HostLimits = { cpus: 64, cpusSource: "test host", memoryMiB: 65536, memorySource: "test host" };

void test("shim sizing: pod CPU quota/period and memory are added to the configured baseline", () => {
  const base = { default_vcpus: 1, default_memory: 512 };
  assert.deepEqual(podSizing(base, {}, bigHost), { vcpus: 1, memoryMiB: 512, limitsMiB: 0 });
  const ann = {
    "io.kubernetes.cri.sandbox-cpu-quota": "150000",
    "io.kubernetes.cri.sandbox-cpu-period": "100000",
    "io.kubernetes.cri.sandbox-memory": String(256 * 1024 * 1024),
  };
  assert.deepEqual(podSizing(base, ann, bigHost), { vcpus: 3, memoryMiB: 768, limitsMiB: 256 });
  // No limit (quota -1 or 0) adds nothing.
  assert.deepEqual(podSizing(base, { "io.kubernetes.cri.sandbox-cpu-quota": "-1", "io.kubernetes.cri.sandbox-cpu-period": "100000" }, bigHost), { vcpus: 1, memoryMiB: 512, limitsMiB: 0 });
  assert.throws(() => podSizing(base, { "io.kubernetes.cri.sandbox-memory": "lots" }, bigHost), (e: unknown) => isKataError(e, "INVALID_ARGUMENT"));
});

void test("shim sizing: memory beyond the host is refused and vCPUs are capped at the host's, naming the request, where each figure came from, and the limit", () => {
  const host: HostLimits = { cpus: 2, cpusSource: "online CPUs in /sys/devices/system/cpu/online", memoryMiB: 24_000, memorySource: "MemTotal in /proc/meminfo" };
  const base = { default_vcpus: 1, default_memory: 512 };
  // Exactly the host fits.
  assert.deepEqual(
    podSizing(base, { "io.kubernetes.cri.sandbox-cpu-quota": "100000", "io.kubernetes.cri.sandbox-cpu-period": "100000", "io.kubernetes.cri.sandbox-memory": String((24_000 - 512) * 1024 * 1024) }, host, "/etc/kata-ts/configuration.toml"),
    { vcpus: 2, memoryMiB: 24_000, limitsMiB: 24_000 - 512 },
  );
  // A CPU limit is a ceiling: beyond the host's CPUs the VM gets all of them, as runc would run it.
  assert.deepEqual(podSizing(base, { "io.kubernetes.cri.sandbox-cpu-quota": "25500000", "io.kubernetes.cri.sandbox-cpu-period": "100000" }, host, "/etc/kata-ts/configuration.toml"), {
    vcpus: 2,
    memoryMiB: 512,
    limitsMiB: 0,
    vcpusCapped:
      "the pod's CPU limit asks for 256 vCPUs (hypervisor.qemu.default_vcpus = 1 in /etc/kata-ts/configuration.toml + 255 from annotations " +
      "io.kubernetes.cri.sandbox-cpu-quota=25500000, io.kubernetes.cri.sandbox-cpu-period=100000); the VM gets this host's 2 (online CPUs in /sys/devices/system/cpu/online)",
  });
  assert.throws(
    () => podSizing(base, { "io.kubernetes.cri.sandbox-memory": String(64 * 1024 ** 3) }, host, "built-in defaults"),
    (e: unknown) =>
      isKataError(e, "RESOURCE_EXHAUSTED") &&
      e.message ===
        "pod VM needs 66048 MiB of memory (hypervisor.qemu.default_memory = 512 (built-in default) + 65536 MiB for the pod's memory limit " +
          "(CRI resources: annotation io.kubernetes.cri.sandbox-memory=68719476736)), more than this host's 24000 MiB (MemTotal in /proc/meminfo): " +
          "lower the pod's memory limit or default_memory",
  );
  // The configuration alone can be too big for the host: the message names only the key.
  assert.throws(
    () => podSizing({ default_vcpus: 8, default_memory: 512 }, {}, host, "/etc/kata-ts/configuration.toml"),
    (e: unknown) => isKataError(e, "RESOURCE_EXHAUSTED") && /^pod VM needs 8 vCPUs \(hypervisor.qemu.default_vcpus = 8 in \/etc\/kata-ts\/configuration.toml\), more than this host's 2 .*: lower default_vcpus$/.test(e.message),
  );
});

void test("shim sizing: host limits parse /sys cpu lists and /proc/meminfo", async () => {
  assert.equal(countCpuList("0-3,8,10-11\n"), 7);
  assert.equal(countCpuList("0"), 1);
  assert.ok(Number.isNaN(countCpuList("x")));
  assert.equal(memTotalMiB("MemTotal:       24563916 kB\nMemFree: 1 kB\n"), 23988);
  const host = await hostLimits();
  assert.ok(host.cpus >= 1 && host.memoryMiB > 0, JSON.stringify(host));
  // kata-ts run sizes its VM from flags: the same rule, naming the flag.
  const small: HostLimits = { cpus: 2, cpusSource: "online CPUs in /sys/devices/system/cpu/online", memoryMiB: 1024, memorySource: "MemTotal in /proc/meminfo" };
  const names = { vcpus: "--cpus", memoryMiB: "--vm-memory" };
  requireFitsHost({ vcpus: 2, memoryMiB: 1024 }, small, names);
  assert.throws(() => requireFitsHost({ vcpus: 3, memoryMiB: 512 }, small, names), { message: "--cpus 3 is more than this host's 2 CPUs (online CPUs in /sys/devices/system/cpu/online)" });
  assert.throws(() => requireFitsHost({ vcpus: 1, memoryMiB: 2048 }, small, names), { message: "--vm-memory 2048 MiB is more than this host's 1024 MiB (MemTotal in /proc/meminfo)" });
});

void test("the server's environment: malloc settings for the server alone, containerd's own values kept", () => {
  const env = serverEnv({ PATH: "/usr/bin" }, 1234);
  for (const [k, v] of Object.entries(serverMallocEnv)) assert.equal(env[k], v);
  assert.deepEqual(env[SERVER_ENV_SET_ENV]?.split(",").sort(), Object.keys(serverMallocEnv).sort(), "named, so the server removes them before it spawns QEMU");
  assert.equal(env[START_AT_ENV], "1234");
  assert.equal(env.UV_THREADPOOL_SIZE, "16");
  const preset = serverEnv({ MALLOC_TRIM_THRESHOLD_: "1048576", UV_THREADPOOL_SIZE: "8" }, 1);
  assert.equal(preset.MALLOC_TRIM_THRESHOLD_, "1048576", "containerd's environment wins");
  assert.equal(preset.UV_THREADPOOL_SIZE, "8");
  assert.ok(!(preset[SERVER_ENV_SET_ENV] ?? "").split(",").includes("MALLOC_TRIM_THRESHOLD_"), "and stays for the server's children");
});
