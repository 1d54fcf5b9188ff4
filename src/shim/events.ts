// Publishing task events to containerd: Events.Forward over ttRPC on $TTRPC_ADDRESS, in order,
// from a queue so an RPC never waits for an event (runtime/v2/shim/publisher.go does the same).
// The Any's type_url is the bare message name (containerd.events.TaskExit): containerd's typeurl
// registry knows events by that name, not by type.googleapis.com/... .
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as ev from "../protocol/gen/containerd/events/task_pb.js";
import { Events, type ForwardRequest } from "../protocol/gen/containerd/services/events/ttrpc/v1/events_pb.js";
import { taskEventRequest } from "../protocol/events.js";
import { TtrpcClient, createClient } from "../protocol/ttrpc/index.js";
import { describeError } from "../util/errors.js";
import type { Logger } from "../util/log.js";
import type { EventSink, TaskEvent } from "./task-events.js";
import { toMount } from "./translate.js";

const attempts = 5;
const callTimeoutMs = 5000;

export class EventPublisher implements EventSink {
  private queue: Promise<void> = Promise.resolve();
  private client: TtrpcClient | undefined;

  constructor(
    private readonly address: string | undefined,
    private readonly namespace: string,
    private readonly log: Logger,
  ) {}

  publish(event: TaskEvent): void {
    if (this.address === undefined || this.address === "") {
      this.log.debug({ topic: event.topic }, "no TTRPC_ADDRESS: event not published");
      return;
    }
    const request = encode(this.namespace, event);
    this.queue = this.queue.then(() => this.forward(event.topic, request));
  }

  /** Wait for queued events (bounded by the per-event retries), then disconnect. */
  async close(): Promise<void> {
    await this.queue;
    this.client?.close();
    this.client = undefined;
  }

  private async forward(topic: string, request: ForwardRequest): Promise<void> {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const client = await this.connect();
        await createClient(client, Events).forward(request, {
          timeoutMs: callTimeoutMs,
          metadata: { "containerd-namespace-ttrpc": this.namespace },
        });
        this.log.debug({ topic }, "event published");
        return;
      } catch (err) {
        this.client?.close();
        this.client = undefined;
        this.log.warn({ topic, attempt, err: describeError(err) }, "publishing event failed");
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
    this.log.error({ topic }, "event dropped after retries");
  }

  private async connect(): Promise<TtrpcClient> {
    if (this.client === undefined) this.client = await TtrpcClient.connect(this.address as string, { timeoutMs: callTimeoutMs });
    return this.client;
  }
}

function encode(ns: string, e: TaskEvent): ForwardRequest {
  switch (e.topic) {
    case "/tasks/create":
      return taskEventRequest(ns, ev.TaskCreateSchema, {
        containerId: e.containerId,
        bundle: e.bundle,
        rootfs: e.rootfs.map(toMount),
        io: { stdin: e.io.stdin, stdout: e.io.stdout, stderr: e.io.stderr, terminal: e.io.terminal },
        pid: e.pid,
      });
    case "/tasks/start":
      return taskEventRequest(ns, ev.TaskStartSchema, { containerId: e.containerId, pid: e.pid });
    case "/tasks/exit":
      return taskEventRequest(ns, ev.TaskExitSchema, {
        containerId: e.containerId,
        id: e.id,
        pid: e.pid,
        exitStatus: e.exitStatus,
        exitedAt: timestampFromDate(e.exitedAt),
      });
    case "/tasks/delete":
      return taskEventRequest(ns, ev.TaskDeleteSchema, {
        containerId: e.containerId,
        id: e.id,
        pid: e.pid,
        exitStatus: e.exitStatus,
        exitedAt: timestampFromDate(e.exitedAt),
      });
    case "/tasks/exec-added":
      return taskEventRequest(ns, ev.TaskExecAddedSchema, { containerId: e.containerId, execId: e.execId });
    case "/tasks/exec-started":
      return taskEventRequest(ns, ev.TaskExecStartedSchema, { containerId: e.containerId, execId: e.execId, pid: e.pid });
    case "/tasks/oom":
      return taskEventRequest(ns, ev.TaskOOMSchema, { containerId: e.containerId });
  }
}
