// ttRPC server: services registered from protobuf-es descriptors, served on a unix socket or on
// any Duplex (inside the guest: the virtio-serial port's read and write streams). On a unix socket
// the connections are bounded: past maxConnections new ones are closed at once, and one that sends
// no request within firstRequestTimeoutMs is closed. A connection that has sent a request may stay
// idle for ever: containerd keeps one per task open between calls and reads its closing as the
// shim's death (runtime/v2 cleanupAfterDeadShim), so an idle timeout would kill healthy pods.
import { lstat, rm } from "node:fs/promises";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Message, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { KataError } from "../../util/errors.js";
import { TtrpcError } from "./errors.js";
import { ServerConnection, type CallObserver, type HandlerContext, type MethodEntry, type UnaryHandler } from "./server-connection.js";
import { Code } from "./status.js";
import { socketPathOf } from "./address.js";
import { publishServerConnection } from "./diagnostics.js";

export type { HandlerContext } from "./server-connection.js";

/** Handlers keyed by the methods' localName (lowerCamelCase, e.g. `createSandbox`). Missing ones answer UNIMPLEMENTED. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]?: (
    request: MessageShape<S[K]["input"]>,
    ctx: HandlerContext,
  ) => Promise<MessageInitShape<S[K]["output"]>>;
};

/** ServiceImpl for a generated service constant: `ServiceImplFor<typeof AgentService>`. */
export type ServiceImplFor<T> = T extends GenService<infer S> ? ServiceImpl<S> : never;

export interface TtrpcServerOptions {
  /** Calls in progress per connection before new ones get RESOURCE_EXHAUSTED. */
  maxConcurrentCalls?: number;
  /** Connections accepted by listen() served at once; more are closed as soon as accepted. */
  maxConnections?: number;
  /** A connection accepted by listen() that sends no request within this is closed (0: never). */
  firstRequestTimeoutMs?: number;
}

const defaultMaxConnections = 128;
const defaultFirstRequestTimeoutMs = 10_000;

export class TtrpcServer {
  private readonly services = new Map<string, Map<string, MethodEntry>>();
  private readonly connections = new Set<ServerConnection>();
  private readonly maxConcurrentCalls: number;
  private readonly maxConnections: number;
  private readonly firstRequestTimeoutMs: number;
  private readonly accepted = new Set<ServerConnection>();
  private listener: net.Server | undefined;
  private socketPath: string | undefined;

  constructor(opts: TtrpcServerOptions = {}) {
    this.maxConcurrentCalls = opts.maxConcurrentCalls ?? 16384;
    this.maxConnections = opts.maxConnections ?? defaultMaxConnections;
    this.firstRequestTimeoutMs = opts.firstRequestTimeoutMs ?? defaultFirstRequestTimeoutMs;
  }

  /** Connections accepted by listen() and still open. */
  get connectionCount(): number {
    return this.accepted.size;
  }

  register<S extends GenServiceMethods>(service: GenService<S>, impl: ServiceImpl<S>): this {
    if (this.services.has(service.typeName)) {
      throw new KataError("ALREADY_EXISTS", `ttrpc service ${service.typeName} is already registered`);
    }
    const known = new Set(service.methods.map((m) => m.localName));
    for (const key of Object.keys(impl)) {
      if (!known.has(key)) {
        throw new KataError("INVALID_ARGUMENT", `${service.typeName} has no method "${key}"; handlers are keyed by lowerCamelCase method name`);
      }
    }
    const methods = new Map<string, MethodEntry>();
    const table = impl as Record<string, ((req: Message, ctx: HandlerContext) => Promise<unknown>) | undefined>;
    for (const method of service.methods) {
      const fn = table[method.localName];
      if (method.methodKind !== "unary" || typeof fn !== "function") continue; // ttRPC 1.1 is unary only
      const handler: UnaryHandler = (req, ctx) => fn.call(impl, req, ctx);
      methods.set(method.name, { method, handler });
    }
    this.services.set(service.typeName, methods);
    return this;
  }

  /**
   * Serve one connection. The server owns the stream from now on and destroys it on close().
   * `observer` is told of each call's start and end; replay() answers calls read elsewhere.
   */
  serve(stream: Duplex, observer?: CallObserver): { replay(streamId: number, requestPayload: Uint8Array): void } {
    return this.open(stream, observer);
  }

  private open(stream: Duplex, observer?: CallObserver): ServerConnection {
    const conn = new ServerConnection(
      stream,
      (service, method) => this.lookup(service, method),
      { maxConcurrentCalls: this.maxConcurrentCalls },
      (c) => {
        this.connections.delete(c);
        this.accepted.delete(c);
      },
      observer,
    );
    this.connections.add(conn);
    return conn;
  }

  /** A connection from listen(): refused over the cap, closed if it stays silent. */
  private accept(sock: net.Socket): void {
    if (this.accepted.size >= this.maxConnections) {
      sock.destroy();
      publishServerConnection({ event: "refused", connections: this.accepted.size });
      return;
    }
    const conn = this.open(sock);
    this.accepted.add(conn);
    if (this.firstRequestTimeoutMs > 0) {
      const timer = setTimeout(() => {
        if (conn.sawRequest || !this.accepted.has(conn)) return;
        conn.close();
        publishServerConnection({ event: "silent", connections: this.accepted.size });
      }, this.firstRequestTimeoutMs);
      timer.unref();
    }
  }

  /** Listen on a unix socket (a path, or unix:///path). A stale socket file is replaced; a live one is an error. */
  async listen(address: string): Promise<void> {
    if (this.listener !== undefined) throw new KataError("FAILED_PRECONDITION", "ttrpc server is already listening");
    const path = socketPathOf(address);
    await removeStaleSocket(path);
    const listener = net.createServer((sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      listener.once("error", (err) =>
        reject(new KataError("UNAVAILABLE", `cannot listen on ${path}: ${err.message}`, { cause: err })),
      );
      listener.listen(path, () => resolve());
    });
    // Accept errors after start-up (EMFILE, ...) must not crash the process; clients just retry.
    listener.on("error", () => undefined);
    this.listener = listener;
    this.socketPath = path;
  }

  /**
   * Resolves once no call is being answered on any connection, or after `timeoutMs`: lets calls in
   * flight send their answers before close() drops the connections. Calls `except` names (long
   * waits handed over to another process instead) are not waited for.
   */
  async drain(timeoutMs: number, except: (service: string, method: string) => boolean = () => false): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ([...this.connections].some((c) => c.activeCallsExcept(except) > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Stop listening, drop every connection (aborting running handlers), remove the socket file. */
  async close(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    for (const conn of [...this.connections]) conn.close();
    if (listener !== undefined) {
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    }
    if (this.socketPath !== undefined) {
      await rm(this.socketPath, { force: true });
      this.socketPath = undefined;
    }
  }

  private lookup(service: string, method: string): MethodEntry | TtrpcError {
    const methods = this.services.get(service);
    if (methods === undefined) return new TtrpcError(Code.UNIMPLEMENTED, `service ${service}`);
    return methods.get(method) ?? new TtrpcError(Code.UNIMPLEMENTED, `method ${service}.${method}`);
  }
}

async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st === undefined) return;
  if (!st.isSocket()) {
    throw new KataError("ALREADY_EXISTS", `cannot listen on ${path}: a file that is not a socket is in the way; remove it`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new KataError("ALREADY_EXISTS", `${path} is already served by another process`);
  await rm(path, { force: true });
}
