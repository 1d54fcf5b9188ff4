// Publishing task events to containerd: Events.Forward over ttRPC on $TTRPC_ADDRESS, in order,
// from a queue so an RPC never waits for an event (runtime/v2/shim/publisher.go does the same).
// The queue is bounded: publish() never blocks and never grows memory without limit, even when
// containerd is slow or gone. An OOM event for a container that already has one queued is
// dropped (containerd learns nothing from the second); when the queue is full, a queued OOM event
// makes room first, and failing that the new event is dropped and logged.
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
export const defaultMaxQueuedEvents = 1024;

interface Queued {
  topic: TaskEvent["topic"];
  /** Set for /tasks/oom: the key duplicates are coalesced on. */
  oomContainer: string | undefined;
  request: ForwardRequest;
}

export class EventPublisher implements EventSink {
  /** Events dropped because the queue was full or they repeated a queued OOM event. */
  dropped = 0;
  private readonly queue: Queued[] = [];
  private draining: Promise<void> | undefined;
  private client: TtrpcClient | undefined;

  constructor(
    private readonly address: string | undefined,
    private readonly namespace: string,
    private readonly log: Logger,
    private readonly maxQueued = defaultMaxQueuedEvents,
  ) {}

  /** Events waiting to be forwarded (the one in flight included). */
  get queued(): number {
    return this.queue.length;
  }

  publish(event: TaskEvent): void {
    if (this.address === undefined || this.address === "") {
      this.log.debug({ topic: event.topic }, "no TTRPC_ADDRESS: event not published");
      return;
    }
    const oomContainer = event.topic === "/tasks/oom" ? event.containerId : undefined;
    // Index 0 is in flight; a duplicate behind it is what coalescing can still save.
    if (oomContainer !== undefined && this.queue.some((q, i) => i > 0 && q.oomContainer === oomContainer)) {
      this.dropped++;
      return;
    }
    if (this.queue.length >= this.maxQueued && !this.evictOom()) {
      this.dropped++;
      this.log.error({ topic: event.topic, queued: this.queue.length, dropped: this.dropped }, "event queue full (containerd is not taking events): event dropped");
      return;
    }
    this.queue.push({ topic: event.topic, oomContainer, request: encode(this.namespace, event) });
    this.draining ??= this.drain();
  }

  /** Wait for queued events (bounded by the per-event retries), then disconnect. */
  async close(): Promise<void> {
    await this.draining;
    this.client?.close();
    this.client = undefined;
  }

  /** Make room by dropping the newest queued OOM event (never the one in flight). */
  private evictOom(): boolean {
    for (let i = this.queue.length - 1; i > 0; i--) {
      if (this.queue[i]?.oomContainer !== undefined) {
        this.queue.splice(i, 1);
        this.dropped++;
        return true;
      }
    }
    return false;
  }

  private async drain(): Promise<void> {
    try {
      for (let head = this.queue[0]; head !== undefined; head = this.queue[0]) {
        await this.forward(head.topic, head.request);
        this.queue.shift();
      }
    } finally {
      this.draining = undefined;
    }
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
    case "/tasks/paused":
      return taskEventRequest(ns, ev.TaskPausedSchema, { containerId: e.containerId });
    case "/tasks/resumed":
      return taskEventRequest(ns, ev.TaskResumedSchema, { containerId: e.containerId });
  }
}
