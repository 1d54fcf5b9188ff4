// ttRPC v1.1 (containerd/ttrpc) for Node: framing, server, client, typed clients. See docs/ttrpc.md.
export { TtrpcServer, type ServiceImpl, type ServiceImplFor, type TtrpcServerOptions, type HandlerContext } from "./server.js";
export type { CallObserver } from "./server-connection.js";
export { TtrpcClient, type CallOptions, type Metadata } from "./client.js";
export { createClient, type TypedClient } from "./typed-client.js";
export { TtrpcError, statusOfError } from "./errors.js";
export { Code, statusForKataCode, kataCodeForStatus, statusName, type StatusCode } from "./status.js";
export {
  FrameDecoder,
  encodeFrame,
  MESSAGE_HEADER_LENGTH,
  MESSAGE_LENGTH_MAX,
  MESSAGE_TYPE_REQUEST,
  MESSAGE_TYPE_RESPONSE,
  STREAM_ID_MAX,
  type Frame,
  type FrameHeader,
  type DecodeEvent,
} from "./frame.js";
export { socketPathOf } from "./address.js";
export { SERVER_CALL_CHANNEL, CLIENT_CALL_CHANNEL, type CallEvent } from "./diagnostics.js";
