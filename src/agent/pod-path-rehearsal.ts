// The rehearsal of a pod's path (PrepareSandbox with `rehearse`, a pooled VM, before any pod), run
// right after the host emptied TCG's translation cache (the pool: src/pool/pooled-vm.ts). Under
// TCG the first pass over any code costs several times a later one, and QEMU empties its whole
// cache when it is full. The first PrepareSandbox (clock, share, adoption's warm-up, the container
// warm-up) translates far more host code than the cache holds, much of it first-time work that a
// pod never repeats (V8 compiling the agent's functions, pages read in, the kernel's first-use
// paths), so what was left in the cache at the offer was an accident of where the last overflow
// fell. This second pass runs only what the pod runs, in the pod's order: adoption's guest code
// (warmAdoptionCode: CreateSandbox's, no process spawned), adoption's UpdateNetwork through the agent's own ttRPC service on the pooled
// NIC with documentation addresses, undone and checked (network/rehearsal.ts), then a container of
// the guest image's own busybox created, started, exec'd into and removed (container/warm-up.ts).
// Only the image's binaries run, nothing of a pod is involved, and nothing is left: any step that
// fails, the undo included, fails the call, and the pool discards the VM.
import { readFile } from "node:fs/promises";
import { KataError } from "../util/errors.js";
import { WARM_IP_OFF } from "../protocol/contract/guest.js";
import { toProtoInterface, toProtoRoute } from "../protocol/contract/network-proto.js";
import type { TtrpcServer } from "../protocol/ttrpc/index.js";
import { warmAdoptionCode } from "./adoption-warmup.js";
import { warmUpContainers, WARM_UP_ROOTFS, withOwnClient } from "./container/warm-up.js";
import { ipBatch, startWarmIpAnswering } from "./network/ip-tool.js";
import { checkRestored, downEthernetNics, rehearsalNetwork, undoLines } from "./network/rehearsal.js";

export interface RehearsalOptions {
  /** Execs of `true` into the container (a pod's first few; default 2). */
  execs?: number;
  timeoutMs?: number;
  sysClassNet?: string;
  cmdlineFile?: string;
  /** Runs adoption's guest code (replaceable in tests). */
  warmAdoption?: () => Promise<void>;
  /** The container part (replaceable in tests). */
  container?: (server: TtrpcServer) => Promise<void>;
}

/** Adoption's UpdateNetwork on the pooled NICs with documentation addresses, then undone and checked. */
export async function rehearseNetwork(server: TtrpcServer, opts: { sysClassNet?: string; warmIp: boolean; timeoutMs: number }): Promise<string[]> {
  const nics = await downEthernetNics(opts.sysClassNet);
  if (nics.length === 0) return [];
  const net = rehearsalNetwork(nics);
  try {
    await withOwnClient(server, (agent) => agent.updateNetwork({ interfaces: net.interfaces.map(toProtoInterface), routes: { routes: net.routes.map(toProtoRoute) } }, { timeoutMs: opts.timeoutMs }));
  } finally {
    // The undo also when the call failed half-way (its lines are written to be re-run). It starts
    // the warm `ip` adoption will write to (the rehearsal's call took the one warmAdoptionPaths started).
    const lines = undoLines(nics);
    const answers = opts.warmIp ? (await startWarmIpAnswering(lines)).answers : await ipBatch(undefined, lines);
    checkRestored(nics, answers);
  }
  return nics.map((n) => n.name);
}

/**
 * Kernel parameters kata_ts.rehearse=net|container (one part only) and kata_ts.rehearse_execs=N,
 * for measuring the parts (bench/pool-start-steps.ts); absent: both parts, 2 execs. A value not
 * understood fails the rehearsal (and so the pooled VM's boot), naming it.
 */
export function rehearsedParts(cmdline: string): { net: boolean; container: boolean; execs: number } {
  const params = cmdline.split(/\s+/);
  const last = (name: string): string | undefined => params.filter((p) => p.startsWith(`${name}=`)).at(-1)?.slice(name.length + 1);
  const part = last("kata_ts.rehearse");
  if (part !== undefined && part !== "net" && part !== "container") throw new KataError("INVALID_ARGUMENT", `kernel parameter kata_ts.rehearse=${part}: use net or container (one part of the rehearsal), or leave it out (both)`);
  const execsText = last("kata_ts.rehearse_execs") ?? "2";
  const execs = Number(execsText);
  if (!/^\d+$/.test(execsText) || execs > 10) throw new KataError("INVALID_ARGUMENT", `kernel parameter kata_ts.rehearse_execs=${execsText}: use a whole number from 0 to 10`);
  return { net: part !== "container", container: part !== "net", execs };
}

export async function rehearsePodPath(server: TtrpcServer, log: (message: string) => void, opts: RehearsalOptions = {}): Promise<void> {
  const t0 = performance.now();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const cmdline = await readFile(opts.cmdlineFile ?? "/proc/cmdline", "utf8").catch(() => "");
  const parts = rehearsedParts(cmdline);
  // CreateSandbox's code with no process spawned; UpdateNetwork then takes the warm `ip` the first
  // PrepareSandbox started, and the undo starts the one adoption will take: one `ip` spawned in all.
  await (opts.warmAdoption ?? warmAdoptionCode)();
  const nics = parts.net ? await rehearseNetwork(server, { ...(opts.sysClassNet === undefined ? {} : { sysClassNet: opts.sysClassNet }), warmIp: !cmdline.split(/\s+/).includes(WARM_IP_OFF), timeoutMs }) : [];
  const tNet = performance.now();
  if (parts.container) await (opts.container ?? ((s) => warmUpContainers(s, WARM_UP_ROOTFS, timeoutMs, opts.execs ?? parts.execs)))(server);
  log(`pod path rehearsed in ${(performance.now() - t0).toFixed(0)} ms (network on ${nics.join(", ") || "no NIC"} ${(tNet - t0).toFixed(0)} ms, container ${(performance.now() - tNet).toFixed(0)} ms)`);
}
