// Behaviour both stand-ins share: the fault a test asks for, the guest's boot, file checks.
import { appendFileSync, existsSync } from "node:fs";

/**
 * - none: behave like a healthy VMM and guest.
 * - api-error: refuse the VM description with the VMM's own kind of error answer.
 * - crash-on-boot: accept the boot request, then die (exit 139, as on SIGSEGV) before the agent answers.
 * - silent-guest: boot, but the guest agent never listens.
 * - console-flood: the guest prints floodBytes to its serial console while booting (a guest that
 *   writes /dev/console in a loop), then its agent listens.
 * - agent-hangup: boot; the vsock accepts the agent's CONNECT (OK) and then closes the stream,
 *   every time, while the VMM runs on (a closed stream is not a dead VMM).
 */
export type Fault = "none" | "api-error" | "crash-on-boot" | "silent-guest" | "console-flood" | "agent-hangup";

/** What a console-flood guest prints: 512 KiB, eight times a 64 KiB console cap. */
export const floodBytes = 512 << 10;

export function faultFromEnv(): Fault {
  const f = process.env.STANDIN_FAULT ?? "none";
  if (f === "none" || f === "api-error" || f === "crash-on-boot" || f === "silent-guest" || f === "console-flood" || f === "agent-hangup") return f;
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

/**
 * The VMM's stdout as the guest serial console, honouring the pipe's flow control as a VMM does (a
 * full pipe blocks the serial port). With console-flood, floodBytes of numbered lines come first.
 */
export async function stdoutConsole(fault: Fault): Promise<void> {
  if (fault === "console-flood") {
    const line = (i: number): string => `flood ${String(i).padStart(8, "0")} ${"x".repeat(48)}\n`; // 64 bytes
    const perChunk = 256; // 16 KiB a write: a guest's serial output reaches the VMM's stdout in bursts
    for (let i = 0; i < floodBytes / 64; i += perChunk) {
      const chunk = Array.from({ length: perChunk }, (_, j) => line(i + j)).join("");
      if (!process.stdout.write(chunk)) await new Promise((resolve) => process.stdout.once("drain", resolve));
    }
  }
  consoleLines((t) => process.stdout.write(t));
}

export function appendTo(file: string): (text: string) => void {
  return (text) => appendFileSync(file, text);
}
