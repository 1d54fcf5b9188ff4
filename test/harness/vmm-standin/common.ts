// Behaviour both stand-ins share: the fault a test asks for, the guest's boot, file checks.
import { appendFileSync, existsSync } from "node:fs";

/**
 * - none: behave like a healthy VMM and guest.
 * - api-error: refuse the VM description with the VMM's own kind of error answer.
 * - crash-on-boot: accept the boot request, then die (exit 139, as on SIGSEGV) before the agent answers.
 * - silent-guest: boot, but the guest agent never listens.
 */
export type Fault = "none" | "api-error" | "crash-on-boot" | "silent-guest";

export function faultFromEnv(): Fault {
  const f = process.env.STANDIN_FAULT ?? "none";
  if (f === "none" || f === "api-error" || f === "crash-on-boot" || f === "silent-guest") return f;
  process.stderr.write(`stand-in: unknown STANDIN_FAULT ${f}\n`);
  process.exit(2);
}

export const guestDelayMs = Number(process.env.STANDIN_GUEST_DELAY_MS ?? "200");

/** The first missing path, if any (a real VMM fails to open it). */
export function firstMissing(paths: ReadonlyArray<string | undefined>): string | undefined {
  return paths.find((p) => p !== undefined && !existsSync(p));
}

export function crashSoon(): void {
  setTimeout(() => {
    process.stderr.write("stand-in: VMM crashed while the guest was booting\n");
    process.exit(139);
  }, 50);
}

/** Console output as a guest prints it while booting. */
export function consoleLines(write: (text: string) => void): void {
  write("[    0.000000] Linux version 6.1.0 (stand-in guest)\n");
  write("[    0.200000] kata-ts agent: listening on vsock port 1024\n");
}

export function appendTo(file: string): (text: string) => void {
  return (text) => appendFileSync(file, text);
}
