// The shim server's log goes to its stderr, which `start` connects to the bundle's `log` FIFO:
// containerd reads that FIFO and forwards it to its own log. So the sandbox layer's loggers (which
// write to stderr too) land there as well. Never stdout: for start and delete it is the protocol.
import { constants, openSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";

export function shimLogger(opts: { debug: boolean; id: string }): Logger {
  const level = opts.debug ? "debug" : (process.env.KATA_TS_LOG_LEVEL ?? "info");
  return pino(
    { name: "containerd-shim-kata-ts-v2", level, base: { pid: process.pid, id: opts.id } },
    pino.destination({ dest: 2, sync: true }),
  );
}

/**
 * An fd for the server's stderr: `<bundle>/log`. containerd creates it as a FIFO; opening it
 * read-write never blocks (and keeps the server's writes from failing with EPIPE if containerd
 * restarts). Without one (a shim run by hand or a test) the same path becomes a regular file.
 */
export function openBundleLog(bundle: string): number {
  return openSync(join(bundle, "log"), constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
}
