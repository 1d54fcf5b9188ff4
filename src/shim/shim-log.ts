// The shim server's log goes to its stderr, which `start` connects to the bundle's `log` FIFO:
// containerd reads that FIFO and forwards it to its own log. So the sandbox layer's loggers (which
// write to stderr too) land there as well (bundle-log.ts opens it for `start`). Never stdout: for
// start and delete it is the protocol.
import { pino, type Logger } from "pino";

export function shimLogger(opts: { debug: boolean; id: string }, fd = 2): Logger {
  const level = opts.debug ? "debug" : (process.env.KATA_TS_LOG_LEVEL ?? "info");
  return pino(
    { name: "containerd-shim-kata-ts-v2", level, base: { pid: process.pid, id: opts.id } },
    pino.destination({ dest: fd, sync: true }),
  );
}
