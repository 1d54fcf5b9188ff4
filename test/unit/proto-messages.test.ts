// The generated protobuf-es code against hand-computed wire bytes and round trips of the
// messages kata-ts sends (task API, events, agent API).
import { test } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RequestSchema, ResponseSchema } from "../../src/protocol/gen/ttrpc/request_pb.js";
import { CreateTaskRequestSchema, Task } from "../../src/protocol/gen/containerd/task/v2/shim_pb.js";
import { TaskExitSchema } from "../../src/protocol/gen/containerd/events/task_pb.js";
import { ForwardRequestSchema } from "../../src/protocol/gen/containerd/services/events/ttrpc/v1/events_pb.js";
import { OptionsSchema } from "../../src/protocol/gen/runtimeoptions/v1/api_pb.js";
import {
  AgentService,
  CreateContainerRequestSchema,
  IPFamily,
  StatsContainerResponseSchema,
  UpdateInterfaceRequestSchema,
} from "../../src/protocol/gen/katats/agent/v1/agent_pb.js";
import { Health } from "../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { taskEventRequest } from "../../src/protocol/events.js";
import { MESSAGE_TYPE_REQUEST, encodeFrame } from "../../src/protocol/ttrpc/index.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

void test("proto: a ttrpc Request frame matches hand-computed bytes", () => {
  const req = create(RequestSchema, {
    service: "a.B",
    method: "M",
    payload: new Uint8Array([0x08, 0x01]),
    timeoutNano: 1000n,
    metadata: [{ key: "k", value: "v" }],
  });
  const body = toBinary(RequestSchema, req);
  // 1:"a.B"  2:"M"  3:bytes 08 01  4:varint 1000 (e8 07)  5:{1:"k" 2:"v"}
  assert.equal(hex(body), "0a03612e4212014d1a02080120e8072a060a016b120176");
  const frame = encodeFrame({ streamId: 1, type: MESSAGE_TYPE_REQUEST, flags: 0 }, body);
  assert.equal(hex(frame.subarray(0, 10)), "00000017" + "00000001" + "01" + "00");
  assert.deepEqual(fromBinary(RequestSchema, body), req);
});

void test("proto: a ttrpc Response with a status matches hand-computed bytes", () => {
  const res = create(ResponseSchema, { status: { code: 5, message: "nf" } });
  assert.equal(hex(toBinary(ResponseSchema, res)), "0a06080512026e66");
  // An empty success response is zero bytes.
  assert.equal(toBinary(ResponseSchema, create(ResponseSchema)).length, 0);
});

void test("proto: service and method names are the full protobuf names containerd uses", () => {
  assert.equal(Task.typeName, "containerd.task.v2.Task");
  assert.deepEqual(
    Task.methods.map((m) => m.name),
    ["State", "Create", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec", "ResizePty", "CloseIO", "Update", "Wait", "Stats", "Connect", "Shutdown"],
  );
  assert.equal(Health.typeName, "katats.agent.v1.Health");
  assert.equal(AgentService.typeName, "katats.agent.v1.AgentService");
  assert.ok(AgentService.methods.some((m) => m.name === "GetOOMEvent" && m.localName === "getOOMEvent"));
});

void test("proto: CreateTaskRequest with mounts and runtime options round-trips", () => {
  const options = create(AnySchema, {
    typeUrl: "runtimeoptions.v1.Options",
    value: toBinary(OptionsSchema, create(OptionsSchema, { configPath: "/etc/kata-ts/configuration.toml" })),
  });
  const msg = create(CreateTaskRequestSchema, {
    id: "c1",
    bundle: "/run/containerd/io.containerd.runtime.v2.task/default/c1",
    rootfs: [{ type: "overlay", source: "overlay", options: ["lowerdir=/a", "upperdir=/b", "workdir=/c"] }],
    stdout: "/run/fifo/out",
    options,
  });
  const back = fromBinary(CreateTaskRequestSchema, toBinary(CreateTaskRequestSchema, msg));
  assert.deepEqual(back, msg);
  assert.equal(fromBinary(OptionsSchema, back.options?.value ?? new Uint8Array()).configPath, "/etc/kata-ts/configuration.toml");
});

void test("proto: a TaskExit event envelope carries the bare type name and a non-zero timestamp", () => {
  const at = new Date("2026-01-02T03:04:05.006Z");
  const req = taskEventRequest("default", TaskExitSchema, { containerId: "c1", id: "c1", pid: 42, exitStatus: 3 }, at);
  const back = fromBinary(ForwardRequestSchema, toBinary(ForwardRequestSchema, req));
  assert.equal(back.envelope?.topic, "/tasks/exit");
  assert.equal(back.envelope?.namespace, "default");
  assert.equal(back.envelope?.event?.typeUrl, "containerd.events.TaskExit");
  assert.deepEqual(back.envelope?.timestamp, timestampFromDate(at));
  const exit = fromBinary(TaskExitSchema, back.envelope?.event?.value ?? new Uint8Array());
  assert.equal(exit.exitStatus, 3);
  assert.equal(exit.pid, 42);
});

void test("proto: agent messages round-trip (spec JSON, 64-bit stats, interfaces)", () => {
  const cc = create(CreateContainerRequestSchema, {
    containerId: "c1",
    ociSpecJson: JSON.stringify({ ociVersion: "1.0.2", process: { args: ["sh"] } }),
    rootfs: "/run/kata-ts/shared/c1/rootfs",
    mounts: [{ source: "kataShared", target: "/run/kata-ts/shared", fstype: "virtiofs" }],
    openStdin: true,
  });
  assert.deepEqual(fromBinary(CreateContainerRequestSchema, toBinary(CreateContainerRequestSchema, cc)), cc);

  const big = 2n ** 63n + 5n; // uint64 beyond JS numbers
  const st = create(StatsContainerResponseSchema, { memory: { usage: big, limit: 1n << 30n }, pids: { current: 3n } });
  const stBack = fromBinary(StatsContainerResponseSchema, toBinary(StatsContainerResponseSchema, st));
  assert.equal(stBack.memory?.usage, big);
  assert.equal(stBack.pids?.current, 3n);

  const ui = create(UpdateInterfaceRequestSchema, {
    interface: {
      name: "eth0",
      hwAddr: "02:42:ac:11:00:02",
      mtu: 1500,
      ipAddresses: [{ family: IPFamily.IP_FAMILY_V4, address: "10.88.0.5", prefixLength: 16 }],
    },
  });
  assert.deepEqual(fromBinary(UpdateInterfaceRequestSchema, toBinary(UpdateInterfaceRequestSchema, ui)), ui);
});
