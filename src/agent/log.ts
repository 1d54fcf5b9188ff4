// Agent logs: one plain line per event on stderr, which the guest init points at the console
// (ttyS0, a file on the host). Plain text, not JSON: under TCG every byte on the emulated UART costs.
import { readFileSync } from "node:fs";

/** Guest uptime in seconds from /proc/uptime (undefined outside Linux guests/hosts without it). */
export function uptimeSeconds(): number | undefined {
  try {
    const first = readFileSync("/proc/uptime", "latin1").split(" ")[0];
    const value = Number(first);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function log(message: string): void {
  const up = uptimeSeconds();
  process.stderr.write(`kata-ts-agent[${up === undefined ? "?" : up.toFixed(2)}]: ${message}\n`);
}
