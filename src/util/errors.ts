// One error type for the whole project: a stable `code` that callers and the shim boundary match
// on (never the message text), a message that says what was wrong and what to do, and a `cause`.

export type KataErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "DEADLINE_EXCEEDED"
  | "UNAVAILABLE"
  | "UNIMPLEMENTED"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "CANCELLED"
  | "INTERNAL";

export class KataError extends Error {
  readonly code: KataErrorCode;

  constructor(code: KataErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KataError";
    this.code = code;
  }
}

export function isKataError(err: unknown, code?: KataErrorCode): err is KataError {
  return err instanceof KataError && (code === undefined || err.code === code);
}

/** The message of an unknown thrown value, with its cause chain, for logs and CLI output. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 8; depth++) {
    parts.push(cur instanceof Error ? cur.message : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
}
