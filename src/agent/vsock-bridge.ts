// The agent on vsock. Node has no AF_VSOCK sockets, so the agent serves ttRPC on a unix socket in the
// guest and a bridge process (socat, in the guest image) listens on the vsock port and connects each
// host connection to it: `socat VSOCK-LISTEN:<port>,fork UNIX-CONNECT:<socket>`. The bridge starts
// only once the agent listens, so a host dial that gets through (hybrid vsock `OK`) reaches a
// serving agent; while nothing listens on the port the VMM refuses the CONNECT and the host retries.
// The bridge is the agent's child: when it ends, the channel is gone and serve() rejects (the
// agent then exits and init powers the VM off, which the host sees).
import { spawn } from "node:child_process";
import { chmod, mkdir, rm } from "node:fs/promises";
import net from "node:net";
import { dirname } from "node:path";
import { KataError } from "../util/errors.js";

/** socat in the guest image (src/guest/rootfs.ts). */
export const SOCAT = "/usr/bin/socat";
/** The agent's local socket the bridge connects to (/run is the guest's tmpfs). */
export const AGENT_LOCAL_SOCKET = "/run/kata-ts/agent.sock";

/** socat's listen address for the guest: vsock `port`, one forked child per host connection. */
export function vsockListenAddress(port: number): string {
  return `VSOCK-LISTEN:${port},fork`;
}

export interface BridgeOptions {
  /** socat's first address: where host connections arrive (vsockListenAddress in the guest). */
  listen: string;
  /** The agent's unix socket. */
  socketPath?: string;
  socat?: string;
  /** Where the bridge's own messages go (the guest console). */
  log: (line: string) => void;
}

export interface BridgedAgent {
  socketPath: string;
  bridgePid: number;
  /** Rejects (UNAVAILABLE, naming the bridge's exit) when the bridge ends; the channel is gone then. */
  ended: Promise<never>;
  /** Stop the bridge and the listener (tests; the guest powers off instead). */
  close(): Promise<void>;
}

/** Listen on the agent's unix socket, hand every connection to onConnection, then start the bridge. */
export async function serveOverBridge(onConnection: (sock: net.Socket) => void, opts: BridgeOptions): Promise<BridgedAgent> {
  const socketPath = opts.socketPath ?? AGENT_LOCAL_SOCKET;
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
  await rm(socketPath, { force: true });
  const conns = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    conns.add(sock);
    sock.once("close", () => conns.delete(sock));
    sock.on("error", () => undefined);
    onConnection(sock);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o600);
  const socat = opts.socat ?? SOCAT;
  const argv = ["-d", opts.listen, `UNIX-CONNECT:${socketPath}`];
  const bridge = spawn(socat, argv, { stdio: ["ignore", "ignore", "pipe"] });
  bridge.stderr.setEncoding("utf8");
  bridge.stderr.on("data", (chunk: string) => {
    for (const line of chunk.split("\n")) if (line !== "") opts.log(`vsock bridge: ${line}`);
  });
  let closing = false;
  const ended = new Promise<never>((_resolve, reject) => {
    const fail = (why: string, cause?: unknown): void => {
      server.close();
      reject(new KataError("UNAVAILABLE", `the agent's vsock bridge (${socat} ${argv.join(" ")}) ${why}${closing ? " (closed)" : ""}`, cause === undefined ? undefined : { cause }));
    };
    bridge.once("error", (err) => fail(`could not start: ${err.message}`, err));
    bridge.once("exit", (code, signal) => fail(`exited (${signal ?? `status ${code}`})`));
  });
  ended.catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    bridge.once("spawn", resolve);
    bridge.once("error", reject);
  }).catch(async (err: unknown) => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(socketPath, { force: true });
    throw new KataError("NOT_FOUND", `cannot start the agent's vsock bridge ${socat}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
  return {
    socketPath,
    bridgePid: bridge.pid ?? 0,
    ended,
    close: async () => {
      closing = true;
      if (bridge.exitCode === null && bridge.signalCode === null) {
        bridge.kill("SIGTERM");
        await ended.catch(() => undefined);
      }
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(socketPath, { force: true });
    },
  };
}
