// Observability without logging calls in the library: every finished call is published on a named
// diagnostics channel (node:diagnostics_channel). Publishing costs nothing without subscribers.
import diagnostics from "node:diagnostics_channel";

/** Published when a server finishes answering a call (success or error). */
export const SERVER_CALL_CHANNEL = "kata-ts:ttrpc:server:call";
/** Published when a listening server refuses a connection or closes a silent one (ConnectionEvent). */
export const SERVER_CONNECTION_CHANNEL = "kata-ts:ttrpc:server:connection";
/** Published when a client call settles. */
export const CLIENT_CALL_CHANNEL = "kata-ts:ttrpc:client:call";

export interface CallEvent {
  service: string;
  method: string;
  streamId: number;
  /** gRPC status code of the outcome (0 OK). */
  status: number;
  durationMs: number;
}

export interface ConnectionEvent {
  /** "refused": over maxConnections; "silent": no request within firstRequestTimeoutMs. */
  event: "refused" | "silent";
  /** Connections served when it happened. */
  connections: number;
}

const serverChannel = diagnostics.channel(SERVER_CALL_CHANNEL);
const connectionChannel = diagnostics.channel(SERVER_CONNECTION_CHANNEL);

export function publishServerConnection(ev: ConnectionEvent): void {
  if (connectionChannel.hasSubscribers) connectionChannel.publish(ev);
}
const clientChannel = diagnostics.channel(CLIENT_CALL_CHANNEL);

export function publishServerCall(ev: CallEvent): void {
  if (serverChannel.hasSubscribers) serverChannel.publish(ev);
}

export function publishClientCall(ev: CallEvent): void {
  if (clientChannel.hasSubscribers) clientChannel.publish(ev);
}
