// A CRI client, as kubelet speaks it: gRPC over containerd's unix socket, runtime.v1 messages
// from our own proto subset (src/cri/gen). Every call has a deadline; RunPodSandbox's is long
// because for kata-ts it boots a VM (TCG here).
import { create, fromBinary, toBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { KataError, type KataErrorCode } from "../util/errors.js";
import { ImageService, RuntimeService } from "./gen/runtime/v1/api_pb.js";

export interface CriCallOptions {
  timeoutMs?: number;
  /** Cancels the call, as kubelet does when its context ends (the call fails with CANCELLED). */
  signal?: AbortSignal;
}

export type CriServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: (input?: MessageInitShape<S[K]["input"]>, opts?: CriCallOptions) => Promise<MessageShape<S[K]["output"]>>;
};

/** A failed CRI call: the gRPC status as `grpcCode`, mapped onto a KataError code. */
export class CriError extends KataError {
  readonly grpcCode: grpc.status;
  constructor(grpcCode: grpc.status, message: string, options?: { cause?: unknown }) {
    super(kataCodeOf(grpcCode), message, options);
    this.name = "CriError";
    this.grpcCode = grpcCode;
  }
}

function kataCodeOf(code: grpc.status): KataErrorCode {
  const map: Partial<Record<grpc.status, KataErrorCode>> = {
    [grpc.status.INVALID_ARGUMENT]: "INVALID_ARGUMENT",
    [grpc.status.NOT_FOUND]: "NOT_FOUND",
    [grpc.status.ALREADY_EXISTS]: "ALREADY_EXISTS",
    [grpc.status.FAILED_PRECONDITION]: "FAILED_PRECONDITION",
    [grpc.status.DEADLINE_EXCEEDED]: "DEADLINE_EXCEEDED",
    [grpc.status.UNAVAILABLE]: "UNAVAILABLE",
    [grpc.status.UNIMPLEMENTED]: "UNIMPLEMENTED",
    [grpc.status.PERMISSION_DENIED]: "PERMISSION_DENIED",
    [grpc.status.RESOURCE_EXHAUSTED]: "RESOURCE_EXHAUSTED",
    [grpc.status.CANCELLED]: "CANCELLED",
  };
  return map[code] ?? "INTERNAL";
}

/** Default deadlines: pod start boots a VM under TCG; stop may wait out a grace period. */
export const DEFAULT_TIMEOUTS_MS: Readonly<Record<string, number>> = {
  RunPodSandbox: 300_000,
  StopPodSandbox: 180_000,
  RemovePodSandbox: 180_000,
  CreateContainer: 180_000,
  StartContainer: 180_000,
  StopContainer: 180_000,
  RemoveContainer: 120_000,
  ExecSync: 120_000,
};
const FALLBACK_TIMEOUT_MS = 60_000;

function bindService<S extends GenServiceMethods>(client: grpc.Client, service: GenService<S>): CriServiceClient<S> {
  const typed: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${service.typeName}/${method.name}`;
    typed[method.localName] = (input: unknown = {}, opts: CriCallOptions = {}) =>
      new Promise((resolve, reject) => {
        const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUTS_MS[method.name] ?? FALLBACK_TIMEOUT_MS;
        const call = client.makeUnaryRequest(
          path,
          (msg: unknown) => Buffer.from(toBinary(method.input, msg as never)),
          (buf: Buffer) => fromBinary(method.output, buf),
          create(method.input, input as never),
          new grpc.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (err, res) => {
            if (err) {
              reject(new CriError(err.code, `CRI ${method.name} failed: ${err.details || err.message}`, { cause: err }));
            } else {
              resolve(res);
            }
          },
        );
        if (opts.signal !== undefined) {
          if (opts.signal.aborted) call.cancel();
          else opts.signal.addEventListener("abort", () => call.cancel(), { once: true });
        }
      });
  }
  return typed as CriServiceClient<S>;
}

export interface CriClient {
  runtime: CriServiceClient<(typeof RuntimeService)["method"]>;
  image: CriServiceClient<(typeof ImageService)["method"]>;
  close(): void;
}

/** A CRI client for the containerd gRPC socket at `socketPath` (no connection until the first call). */
export function connectCri(socketPath: string): CriClient {
  const client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), {
    // ExecSync may return up to 16 MiB of output per stream.
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
  });
  return {
    runtime: bindService(client, RuntimeService),
    image: bindService(client, ImageService),
    close: () => client.close(),
  };
}
