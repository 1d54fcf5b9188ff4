// Frames written in the same tick go out in one write: with many calls in flight this saves a
// syscall per frame (cork buffers the writes, uncork on the next tick flushes them as one writev).
import type { Duplex } from "node:stream";

export function writeFrame(stream: Duplex, frame: Buffer): boolean {
  if (stream.writableCorked === 0) {
    stream.cork();
    process.nextTick(() => stream.uncork());
  }
  return stream.write(frame);
}
