// The guest console (ttyS0) goes to a file: readable after a failed boot, and never a terminal or
// pipe that could stall QEMU when nobody reads it.
import { qemuOpts } from "./opts.js";

export interface ConsoleOptions {
  logPath: string;
}

export function renderConsole(opts: ConsoleOptions): string[] {
  return ["-chardev", qemuOpts("file", { id: "console0", path: opts.logPath }), "-serial", "chardev:console0"];
}
