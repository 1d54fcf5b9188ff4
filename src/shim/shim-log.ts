// The shim's log: never stdout/stderr (containerd reads `start`'s output as the address and would
// wait on inherited pipes), but the bundle's `log` FIFO, which containerd reads and forwards to its
// own log. Opened read-write so the open never blocks; without a FIFO (a shim run by hand or by a
// test) the same path becomes a regular append-only file.
import { constants, openSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";

export function openShimLog(bundle: string, opts: { debug: boolean; id: string }): Logger {
  const level = opts.debug ? "debug" : (process.env.KATA_TS_LOG_LEVEL ?? "info");
  let fd: number;
  try {
    fd = openSync(join(bundle, "log"), constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
  } catch {
    return pino({ level: "silent" });
  }
  return pino(
    { name: "containerd-shim-kata-ts-v2", level, base: { pid: process.pid, id: opts.id } },
    pino.destination({ dest: fd, sync: true }),
  );
}
