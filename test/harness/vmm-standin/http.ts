// The HTTP side shared by both stand-ins: read a request (JSON body checked for the content type
// and syntax), answer with a status and an optional body.
import type http from "node:http";

export interface ParsedRequest {
  method: string;
  path: string;
  body: unknown;
  /** Set when the request is malformed at the HTTP level (not JSON, wrong content type). */
  problem?: string;
}

export async function readRequest(req: http.IncomingMessage): Promise<ParsedRequest> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  const method = req.method ?? "";
  const path = req.url ?? "";
  if (text === "") return { method, path, body: undefined };
  if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
    return { method, path, body: text, problem: `body sent with content type ${req.headers["content-type"] ?? "(none)"}, not application/json` };
  }
  try {
    return { method, path, body: JSON.parse(text) as unknown };
  } catch {
    return { method, path, body: text, problem: "body is not JSON" };
  }
}

export function answer(res: http.ServerResponse, status: number, body?: unknown, contentType = "application/json"): void {
  const text = body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, text === "" ? {} : { "Content-Type": contentType, "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
