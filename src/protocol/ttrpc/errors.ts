// The error a ttRPC call fails with: a KataError whose `status` is the gRPC code from the wire
// (or the local one: DEADLINE_EXCEEDED, UNAVAILABLE, ...), and whose `code` is the matching
// KataError code, so callers can match either.
import { KataError, isKataError } from "../../util/errors.js";
import { Code, kataCodeForStatus, statusForKataCode, type StatusCode } from "./status.js";

export class TtrpcError extends KataError {
  readonly status: number;

  constructor(status: number, message: string, options?: { cause?: unknown }) {
    super(kataCodeForStatus(status), message, options);
    this.name = "TtrpcError";
    this.status = status;
  }
}

/** The status a server answers for an error a handler threw. */
export function statusOfError(err: unknown): { code: number; message: string } {
  if (err instanceof TtrpcError) return { code: err.status, message: err.message };
  if (isKataError(err)) return { code: statusForKataCode(err.code), message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: Code.UNKNOWN satisfies StatusCode, message };
}
