// The admission webhook's HTTPS server: POST /mutate and /validate take AdmissionReview v1,
// GET /healthz answers "ok". Bounded: a body limit (413), a whole-request deadline (408) and a
// header deadline; a malformed review gets 400 with the reason, and no request can crash it.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KataError } from "../../util/errors.js";
import type { Logger } from "../../util/log.js";
import { TenantIndex } from "../policy/model.js";
import type { TenantPolicy } from "../policy/schema.js";
import { admit, type AdmissionMode } from "./admit.js";
import { parseReview, reviewResponse } from "./review.js";

export interface WebhookServerOptions {
  policy: TenantPolicy;
  /** PEM serving certificate (chain) and its private key. */
  cert: string;
  key: string;
  port?: number;
  host?: string;
  /** Largest accepted body; the API server's reviews of large pods are a few hundred KiB. */
  maxBodyBytes?: number;
  /** Deadline for receiving a whole request (the API server gives up after timeoutSeconds anyway). */
  requestTimeoutMs?: number;
  logger?: Logger;
}

export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// An oversized body is drained and discarded before the 413 goes out: answering mid-upload makes
// the client see a connection reset instead of the reason. The request deadline bounds the drain.
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on("end", () => {
      if (size > limit) reject(new HttpError(413, `body of ${size} bytes exceeds the limit of ${limit}`));
      else resolve(Buffer.concat(chunks).toString("utf8"));
    });
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: object | string): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export class WebhookServer {
  readonly server: Server;
  private readonly index: TenantIndex;
  private readonly maxBody: number;

  constructor(private readonly opts: WebhookServerOptions) {
    this.index = new TenantIndex(opts.policy);
    this.maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const timeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.server = createServer({
      cert: opts.cert,
      key: opts.key,
      minVersion: "TLSv1.2",
      requestTimeout: timeout,
      headersTimeout: Math.min(timeout, 10_000),
      keepAliveTimeout: 30_000,
      // How often deadlines are checked; Node's default (30 s) would make them meaningless.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeout / 4))),
    });
    this.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((err: unknown) => {
        opts.logger?.error({ err }, "webhook request failed");
        send(res, 500, { error: "internal error" });
      });
    });
    this.server.on("tlsClientError", (err) => opts.logger?.debug({ err: err.message }, "TLS handshake failed"));
  }

  async listen(): Promise<{ port: number; host: string }> {
    const { port = 8443, host = "0.0.0.0" } = this.opts;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new KataError("UNAVAILABLE", `cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
    });
    const addr = this.server.address() as AddressInfo;
    return { port: addr.port, host: addr.address };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz" || path === "/readyz") {
      if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "use GET\n");
      return send(res, 200, "ok\n");
    }
    const mode: AdmissionMode | undefined = path === "/mutate" ? "mutate" : path === "/validate" ? "validate" : undefined;
    if (mode === undefined) return send(res, 404, { error: `no such endpoint ${path}; use /mutate, /validate or /healthz` });
    if (req.method !== "POST") return send(res, 405, { error: "AdmissionReview must be POSTed" });
    let body: string;
    try {
      body = await readBody(req, this.maxBody);
    } catch (err) {
      if (err instanceof HttpError) return send(res, err.status, { error: err.message });
      throw err;
    }
    const parsed = parseReview(body);
    if (!parsed.ok) {
      this.opts.logger?.warn({ reason: parsed.reason }, "malformed AdmissionReview");
      return send(res, 400, { error: parsed.reason });
    }
    const decision = admit(mode, parsed.request, this.index);
    if (!decision.allowed) {
      this.opts.logger?.info({ namespace: parsed.request.namespace, pod: parsed.request.name, reason: decision.message }, "pod refused");
    }
    send(res, 200, reviewResponse(parsed.request.uid, decision));
  }
}
