// containerd task events as the shim publishes them: Events.Forward(ForwardRequest{Envelope}).
// containerd decodes the Any by its bare type name (e.g. "containerd.events.TaskExit"), not by a
// type.googleapis.com/ URL, so the Any is built here rather than with anyPack().
import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { AnySchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  TaskCheckpointedSchema,
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from "./gen/containerd/events/task_pb.js";
import { ForwardRequestSchema, type ForwardRequest } from "./gen/containerd/services/events/ttrpc/v1/events_pb.js";

/** Topic of each task event message (containerd runtime/v2 shim publisher). */
export const TASK_EVENT_TOPICS = new Map<DescMessage, string>([
  [TaskCreateSchema, "/tasks/create"],
  [TaskStartSchema, "/tasks/start"],
  [TaskExitSchema, "/tasks/exit"],
  [TaskDeleteSchema, "/tasks/delete"],
  [TaskExecAddedSchema, "/tasks/exec-added"],
  [TaskExecStartedSchema, "/tasks/exec-started"],
  [TaskOOMSchema, "/tasks/oom"],
  [TaskPausedSchema, "/tasks/paused"],
  [TaskResumedSchema, "/tasks/resumed"],
  [TaskCheckpointedSchema, "/tasks/checkpointed"],
]);

/** The ForwardRequest for one task event; the topic follows from the message type. */
export function taskEventRequest<D extends DescMessage>(
  namespace: string,
  schema: D,
  event: MessageInitShape<D>,
  at: Date = new Date(),
): ForwardRequest {
  const topic = TASK_EVENT_TOPICS.get(schema);
  if (topic === undefined) throw new TypeError(`${schema.typeName} is not a containerd task event`);
  return create(ForwardRequestSchema, {
    envelope: {
      timestamp: timestampFromDate(at),
      namespace,
      topic,
      event: create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, create(schema, event)) }),
    },
  });
}
