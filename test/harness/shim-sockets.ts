// containerd 1.6 puts every shim's socket under /run/containerd/s whatever --state says. Teardown
// removes only sockets that appeared during the test AND that nothing listens on any more, so a
// concurrently running containerd (another test, the host's) keeps its live sockets.
import { connect } from "node:net";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";

export const SHIM_SOCKET_DIR = "/run/containerd/s";

export async function listShimSockets(): Promise<string[]> {
  try {
    return (await readdir(SHIM_SOCKET_DIR)).map((f) => join(SHIM_SOCKET_DIR, f));
  } catch {
    return [];
  }
}

export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true); // slow to answer is still alive: leave it
    }, 2_000);
    s.once("connect", () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export async function cleanStaleShimSockets(before: ReadonlySet<string>): Promise<void> {
  for (const p of await listShimSockets()) {
    if (before.has(p)) continue;
    if (!(await isListening(p))) await rm(p, { force: true });
  }
}

/**
 * Sockets created since `before` that nothing listens on: debris a killed shim left. A live one
 * belongs to a running shim, and every process of this harness is already checked separately by
 * its command line, so a live socket here is another containerd's (a concurrent test's).
 */
export async function staleNewShimSockets(before: ReadonlySet<string>): Promise<string[]> {
  const out: string[] = [];
  for (const p of await listShimSockets()) if (!before.has(p) && !(await isListening(p))) out.push(p);
  return out;
}
