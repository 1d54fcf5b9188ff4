// Status codes on the wire (gRPC numbering, as ttRPC's google.rpc.Status uses) and the ONE place
// where the project's KataError codes are mapped to and from them.
import type { KataErrorCode } from "../../util/errors.js";

export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof Code)[keyof typeof Code];

// A Record, so adding a KataErrorCode without a wire code fails the build here.
const toWire: Record<KataErrorCode, StatusCode> = {
  CANCELLED: Code.CANCELLED,
  INVALID_ARGUMENT: Code.INVALID_ARGUMENT,
  DEADLINE_EXCEEDED: Code.DEADLINE_EXCEEDED,
  NOT_FOUND: Code.NOT_FOUND,
  ALREADY_EXISTS: Code.ALREADY_EXISTS,
  PERMISSION_DENIED: Code.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: Code.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: Code.FAILED_PRECONDITION,
  UNIMPLEMENTED: Code.UNIMPLEMENTED,
  INTERNAL: Code.INTERNAL,
  UNAVAILABLE: Code.UNAVAILABLE,
};

const fromWire = new Map<number, KataErrorCode>(
  Object.entries(toWire).map(([kata, wire]) => [wire, kata as KataErrorCode]),
);

/** The wire status for a KataError code. */
export function statusForKataCode(code: KataErrorCode): StatusCode {
  return toWire[code];
}

/** The KataError code for a wire status; codes the project has no name for become INTERNAL. */
export function kataCodeForStatus(status: number): KataErrorCode {
  return fromWire.get(status) ?? "INTERNAL";
}

/** "NOT_FOUND" for 5, "code 42" for numbers outside the table: for messages. */
export function statusName(status: number): string {
  const entry = Object.entries(Code).find(([, v]) => v === status);
  return entry !== undefined ? entry[0] : `code ${status}`;
}
