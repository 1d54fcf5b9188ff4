// `start`'s stdin (the runtime options), read to EOF once per process: the front entry (front.ts)
// may read it before it hands over to the main bundle, which then finds it here.

/** Where the front entry leaves what it read, for the main bundle in the same process (a separate module instance). */
export const STDIN_READ_KEY = Symbol.for("kata-ts.shim.stdin");

/** Set by the front entry when it already asked the pool for a warm server: the main bundle does not ask again. */
export const WARM_TRIED_KEY = Symbol.for("kata-ts.shim.warm-tried");

export function warmAlreadyTried(): boolean {
  return (globalThis as Record<symbol, unknown>)[WARM_TRIED_KEY] === true;
}

export async function readStdin(): Promise<Uint8Array> {
  const read = (globalThis as Record<symbol, unknown>)[STDIN_READ_KEY];
  if (read instanceof Uint8Array) return read;
  if (process.stdin.isTTY) return new Uint8Array();
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
