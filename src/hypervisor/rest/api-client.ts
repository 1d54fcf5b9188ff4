// HTTP/1.1 over a VMM's unix API socket (Cloud Hypervisor and Firecracker both serve one). Every
// request has a deadline; a non-2xx answer becomes a KataError built by the driver's own reading of
// that VMM's error body, so the message says what the VMM refused and why.
import http from "node:http";
import { KataError, type KataErrorCode } from "../../util/errors.js";

export interface ApiResponse {
  status: number;
  body: string;
}

export type ApiFailure = (method: string, path: string, res: ApiResponse) => KataError;

const maxBodyBytes = 1 << 20;

export class ApiClient {
  constructor(
    readonly socketPath: string,
    private readonly vmmName: string,
    private readonly failure: ApiFailure,
  ) {}

  /** Send one request; resolves with the parsed JSON body (undefined when empty) of a 2xx answer. */
  async call(method: "GET" | "PUT" | "PATCH", path: string, body?: unknown, timeoutMs = 5000): Promise<unknown> {
    const res = await this.raw(method, path, body, timeoutMs);
    if (res.status < 200 || res.status > 299) throw this.failure(method, path, res);
    if (res.body.trim() === "") return undefined;
    try {
      return JSON.parse(res.body) as unknown;
    } catch (err) {
      throw new KataError("INTERNAL", `${this.vmmName} answered ${method} ${path} with a body that is not JSON: ${res.body.slice(0, 200)}`, { cause: err });
    }
  }

  raw(method: string, path: string, body: unknown, timeoutMs: number): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          agent: false,
          headers: {
            Accept: "application/json",
            ...(payload === undefined ? {} : { "Content-Type": "application/json", "Content-Length": payload.length }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > maxBodyBytes) req.destroy(new Error(`answer larger than ${maxBodyBytes} bytes`));
            else chunks.push(c);
          });
          res.on("end", () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
          });
          res.on("error", (err) => fail("UNAVAILABLE", err));
        },
      );
      const fail = (code: KataErrorCode, err: Error): void => {
        clearTimeout(timer);
        reject(new KataError(code, `${this.vmmName} API ${method} ${path} on ${this.socketPath} failed: ${err.message}`, { cause: err }));
      };
      const timer = setTimeout(() => {
        req.destroy();
        reject(new KataError("DEADLINE_EXCEEDED", `${this.vmmName} API ${method} ${path} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      req.on("error", (err) => fail("UNAVAILABLE", err));
      req.end(payload);
    });
  }
}

/** The KataError code for an HTTP status from a VMM API. */
export function codeForStatus(status: number): KataErrorCode {
  if (status === 400) return "INVALID_ARGUMENT";
  if (status === 404) return "NOT_FOUND";
  if (status === 405 || status === 409) return "FAILED_PRECONDITION";
  if (status === 429) return "RESOURCE_EXHAUSTED";
  return "INTERNAL";
}
