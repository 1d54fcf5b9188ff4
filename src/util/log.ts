// Structured logs on stderr (never stdout: the shim's stdout is a protocol channel).
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(name: string, destination: number | string = 2): Logger {
  return pino(
    { name, level: process.env.KATA_TS_LOG_LEVEL ?? "info", base: { pid: process.pid } },
    pino.destination({ dest: destination, sync: true }),
  );
}
