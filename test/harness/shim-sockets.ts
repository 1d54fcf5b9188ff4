// containerd 1.6 puts every shim's socket under /run/containerd/s whatever --state says. Teardown
// removes only this instance's sockets (own-shim-sockets.ts) that nothing listens on any more, so
// a concurrently running containerd (another test, the host's) keeps its sockets.
import { connect } from "node:net";
import { readdir } from "node:fs/promises";
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
