// The last bytes of a (possibly large, possibly missing) log file, for error messages.
import { open } from "node:fs/promises";

export async function readTail(path: string, maxBytes: number): Promise<string> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch {
    return "";
  }
  try {
    const { size } = await fh.stat();
    const length = Math.min(size, maxBytes);
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, size - length);
    // Drop a partial first line, and carriage returns the serial console adds.
    const text = buf.toString("utf8").replaceAll("\r", "");
    return size > maxBytes ? text.slice(text.indexOf("\n") + 1) : text;
  } finally {
    await fh.close();
  }
}
