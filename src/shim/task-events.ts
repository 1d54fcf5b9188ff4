// Task events in the shim's internal shape; events.ts turns them into containerd's protobuf
// envelopes. The task service only says what happened.
import type { RootfsMount, StdioPaths } from "./pod-port.js";

export type TaskEvent =
  | { topic: "/tasks/create"; containerId: string; bundle: string; rootfs: RootfsMount[]; io: StdioPaths; pid: number }
  | { topic: "/tasks/start"; containerId: string; pid: number }
  | { topic: "/tasks/exit"; containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }
  | { topic: "/tasks/delete"; containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }
  | { topic: "/tasks/exec-added"; containerId: string; execId: string }
  | { topic: "/tasks/exec-started"; containerId: string; execId: string; pid: number }
  | { topic: "/tasks/oom"; containerId: string }
  | { topic: "/tasks/paused"; containerId: string }
  | { topic: "/tasks/resumed"; containerId: string };

export interface EventSink {
  publish(event: TaskEvent): void;
}
