// The bundle's `log` file, which `start` makes the server's stderr; its own module so that `start`
// does not load the logger (pino) to open it.
import { constants, openSync } from "node:fs";
import { join } from "node:path";

/**
 * An fd for the server's stderr: `<bundle>/log`. containerd creates it as a FIFO; opening it
 * read-write never blocks (and keeps the server's writes from failing with EPIPE if containerd
 * restarts). Without one (a shim run by hand or a test) the same path becomes a regular file.
 */
export function openBundleLog(bundle: string): number {
  return openSync(join(bundle, "log"), constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
}
