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

/**
 * How to read a guest reset that ended a VM run with -no-reboot: a panicking kernel resets (panic=-1),
 * and so does a guest without ACPI that ends itself (it cannot power off: the guest init's end_vm).
 * A panic prints "Kernel panic" on the console even under `quiet` (an emergency message), so the
 * console's tail tells the two apart; without a tail the reset counts as a panic.
 */
export function guestResetReason(consoleTail: string | undefined): "guest-panic" | "poweroff" {
  return consoleTail === undefined || /Kernel panic/.test(consoleTail) ? "guest-panic" : "poweroff";
}
