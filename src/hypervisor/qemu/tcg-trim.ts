// Gives an idle VM's TCG translation cache back to the host. QEMU 7.2 keeps its code buffer fully
// resident for its life once it has filled it (docs/density.md "TCG translation cache"), though an
// idle guest runs almost none of it. With `-accel tcg,split-wx=on` the buffer is a memfd
// ("tcg-jit") mapped twice (written through one mapping, executed through the other); QEMU closes
// the fd, but root reaches the file through /proc/PID/map_files and can punch holes in it: the
// punched pages are freed, and read back as zeros when next touched.
//
// That is safe only when nothing that will run again lives in the punched range. Where things are
// (QEMU 7.2 tcg/tcg.c tcg_prologue_init, tcg/region.c tcg_region_init): the prologue (the code
// every translated block is entered and left through) is generated at the very start of the
// buffer, and every region TCG translates into (one per buffer, or up to 8 per vCPU with MTTCG)
// starts after it; translated blocks, their TranslationBlock records and their constant pools all
// live in the regions, and a flush forgets them all (the hash table, the region trees, each vCPU's
// jump cache). So, with the VM paused by a gdbstub session (gdbstub.ts): flush and check that no
// translated block is left (tcg-flush.ts flushPausedVm: while the VM is paused nothing is
// translated), punch everything past the first `keepBytes` (the prologue, with margin), detach.
// The VM then translates its code afresh into zeroed pages, which are allocated again as it does.
// A VM whose flush cannot be shown (every step interrupted) is not punched.
import { readFile, stat } from "node:fs/promises";
import { KataError } from "../../util/errors.js";
import { run } from "../../util/exec.js";
import { withPausedVm, type HmpRunner } from "./gdbstub.js";
import { flushPausedVm } from "./tcg-flush.js";

/** What QEMU's memfd for the code buffer is called in /proc/PID/maps. */
const JIT_MEMFD = "/memfd:tcg-jit (deleted)";

/** The gdbstub's socket, in the VM's state dir (root's, 0700). */
export const trimSocketName = "tcg-trim.sock";

/** The prologue and then some: what a trim keeps at the start of the buffer (page and huge-page safe). */
export const defaultKeepBytes = 64 * 1024;

export interface TcgJitFile {
  /** /proc/PID/map_files/START-END of one of the buffer's mappings: opens the memfd itself. */
  path: string;
  /** The buffer's size (the memfd's). */
  sizeBytes: number;
  /** Bytes of the buffer the host holds now (the memfd's allocated pages). */
  residentBytes: number;
}

/** The `START-END` of every mapping of QEMU's code-buffer memfd in a /proc/PID/maps text. */
export function jitMappingRanges(maps: string): string[] {
  const ranges: string[] = [];
  for (const line of maps.split("\n")) {
    if (!line.endsWith(JIT_MEMFD)) continue;
    const range = line.split(" ", 1)[0];
    if (range !== undefined && /^[0-9a-f]+-[0-9a-f]+$/.test(range)) ranges.push(range);
  }
  return ranges;
}

/**
 * QEMU `pid`'s code-buffer memfd. FAILED_PRECONDITION when it has none (QEMU runs without
 * split-wx, or not under TCG); NOT_FOUND when the process is gone.
 */
export async function tcgJitFile(pid: number): Promise<TcgJitFile> {
  const maps = await readFile(`/proc/${pid}/maps`, "utf8").catch((err: unknown) => {
    throw new KataError("NOT_FOUND", `cannot read the memory map of QEMU (pid ${pid}): is it still running?`, { cause: err });
  });
  const range = jitMappingRanges(maps)[0];
  if (range === undefined) {
    throw new KataError("FAILED_PRECONDITION", `QEMU (pid ${pid}) has no "tcg-jit" memfd: it runs without -accel tcg,split-wx=on (a VM started before [hypervisor.qemu] tcg_idle_trim_s was set, or not under TCG), so its translation cache cannot be given back`);
  }
  const path = `/proc/${pid}/map_files/${range}`;
  const st = await stat(path).catch((err: unknown) => {
    throw new KataError("NOT_FOUND", `cannot open QEMU's code buffer ${path} (root is needed; is QEMU still running?)`, { cause: err });
  });
  return { path, sizeBytes: st.size, residentBytes: st.blocks * 512 };
}

/** Frees every page of the buffer past `keepBytes` (fallocate --punch-hole; Node has no binding). */
export async function punchJitFile(file: TcgJitFile, keepBytes: number, timeoutMs: number): Promise<void> {
  if (keepBytes % 4096 !== 0 || keepBytes <= 0) throw new KataError("INVALID_ARGUMENT", `the part of the TCG buffer to keep must be a positive multiple of 4096 bytes, not ${keepBytes}`);
  const length = file.sizeBytes - keepBytes;
  if (length <= 0) return;
  await run("fallocate", ["--punch-hole", "--offset", String(keepBytes), "--length", String(length), file.path], { timeoutMs });
}

export interface TrimResult {
  /** Bytes of the buffer the host held before the trim, and after it (what the VM translated since it resumed). */
  beforeBytes: number;
  afterBytes: number;
}

/**
 * Empties the TCG cache of QEMU `pid` (behind `hmp`) and gives the buffer's pages back to the host.
 * `socketPath` is where the short-lived gdbstub listens: in a directory only root can enter (the
 * VM's own). The VM is paused for the session (a few round trips and one fallocate) and resumed on
 * every path. Throws FAILED_PRECONDITION (no split-wx buffer), NOT_FOUND (QEMU gone),
 * DEADLINE_EXCEEDED, UNAVAILABLE or INTERNAL (the gdbstub or fallocate failed), CANCELLED
 * (`signal`).
 */
export async function trimTcgCache(pid: number, hmp: HmpRunner, socketPath: string, opts: { timeoutMs?: number; keepBytes?: number; signal?: AbortSignal } = {}): Promise<TrimResult> {
  // One gdbstub session per VM at a time (the socket path is the VM's): a second trim waits.
  const previous = sessions.get(socketPath) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => trimNow(pid, hmp, socketPath, opts));
  const settled = mine.then(() => undefined, () => undefined);
  sessions.set(socketPath, settled);
  void settled.then(() => {
    if (sessions.get(socketPath) === settled) sessions.delete(socketPath);
  });
  return mine;
}

/** The trim in progress (or last queued) per gdbstub socket path. */
const sessions = new Map<string, Promise<void>>();

async function trimNow(pid: number, hmp: HmpRunner, socketPath: string, opts: { timeoutMs?: number; keepBytes?: number; signal?: AbortSignal }): Promise<TrimResult> {
  const file = await tcgJitFile(pid);
  const keepBytes = opts.keepBytes ?? defaultKeepBytes;
  await withPausedVm(hmp, socketPath, opts.timeoutMs ?? 5000, opts.signal, async (vm) => {
    await flushPausedVm(vm, hmp);
    await punchJitFile(file, keepBytes, vm.left());
  });
  const after = await stat(file.path).catch(() => undefined);
  return { beforeBytes: file.residentBytes, afterBytes: after === undefined ? 0 : after.blocks * 512 };
}
