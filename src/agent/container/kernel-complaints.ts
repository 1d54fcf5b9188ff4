// What the guest kernel said went wrong, for error messages. A stuck container start has so far
// always been the kernel's fault (an oops in the virtio-fs completion worker leaves every later
// virtio-fs request unanswered, see docs/containers.md), and the guest boots with `quiet`, so the
// only record is the kernel's ring buffer. /dev/kmsg gives one record per read(2) and EAGAIN at the
// end when opened non-blocking; a record is `prio,seq,usec,flags;text` plus " KEY=value" lines.
import { closeSync, constants, openSync, readSync } from "node:fs";

/** Headlines of kernel bug reports (WARN, BUG, oops, lockups). */
const HEADLINE = /^(WARNING:|BUG:|kernel BUG|Oops|general protection fault|Unable to handle|watchdog: BUG|INFO: task .* blocked|RIP:|Workqueue:|Call Trace:|CPU: \d+ PID:)/;
const MAX_RECORDS = 4096;

export interface KernelComplaint {
  /** Seconds since boot. */
  at: number;
  text: string;
}

/**
 * Kernel bug reports in `kmsgPath` (normally /dev/kmsg), oldest first: the headline records and,
 * after a "Call Trace:", the first frames. Empty when there are none or the log cannot be read.
 */
export function readKernelComplaints(kmsgPath: string, maxLines = 24): KernelComplaint[] {
  let fd: number;
  try {
    fd = openSync(kmsgPath, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return [];
  }
  const out: KernelComplaint[] = [];
  const buf = Buffer.alloc(16 * 1024);
  let frames = 0;
  try {
    for (let i = 0; i < MAX_RECORDS && out.length < maxLines; i++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EPIPE") continue; // records were overwritten while reading: go on with the next
        break; // EAGAIN: the end; anything else: give up quietly
      }
      if (n <= 0) break;
      const rec = parseRecord(buf.toString("utf8", 0, n));
      if (rec === undefined) continue;
      if (HEADLINE.test(rec.text)) {
        frames = rec.text === "Call Trace:" ? 4 : 0;
        out.push(rec);
      } else if (frames > 0 && /^\s*\S+\+0x/.test(rec.text)) {
        frames--;
        out.push(rec);
      }
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

export function parseRecord(raw: string): KernelComplaint | undefined {
  const semi = raw.indexOf(";");
  if (semi < 0) return undefined;
  const fields = raw.slice(0, semi).split(",");
  const usec = Number(fields[2]);
  const text = (raw.slice(semi + 1).split("\n")[0] ?? "").trimEnd();
  return { at: Number.isFinite(usec) ? usec / 1e6 : 0, text };
}

/** One line for an error message: "[12.34] general protection fault ...; RIP: ...; ...". */
export function describeKernelComplaints(found: KernelComplaint[]): string {
  return found.map((c) => `[${c.at.toFixed(2)}] ${c.text.trim()}`).join("; ");
}
