// The guest console (ttyS0) goes to a unix socket the host listens on (console-log.ts), never to a
// file QEMU writes itself: the guest controls how much it prints, so the host must be the one that
// caps what is kept. QEMU connects as the client at start-up (server=off), so no early line is lost.
import { qemuOpts } from "./opts.js";

export interface ConsoleOptions {
  socketPath: string;
}

export function renderConsole(opts: ConsoleOptions): string[] {
  return ["-chardev", qemuOpts("socket", { id: "console0", path: opts.socketPath, server: false }), "-serial", "chardev:console0"];
}
