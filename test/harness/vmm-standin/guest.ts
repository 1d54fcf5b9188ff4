// The stand-in's "guest": a hybrid vsock listener on the unix socket the VMM was given, which
// acknowledges `CONNECT 1024\n` with `OK <port>\n` once the guest agent "listens" and then serves
// the real agent Health service over ttRPC on that stream. Before then, or for any other port, it
// closes the connection, as Cloud Hypervisor and Firecracker do when nothing in the guest listens.
import net from "node:net";
import { rm } from "node:fs/promises";
import { TtrpcServer } from "../../../src/protocol/ttrpc/index.js";
import { Health } from "../../../src/protocol/gen/katats/agent/v1/health_pb.js";
import { healthService } from "../../../src/agent/health.js";
import { agentChannelFromCmdline, agentVsockParam, type AgentChannel } from "../../../src/protocol/contract/guest.js";

export const agentPort = 1024;

export class StandinGuest {
  private listening = false;
  /** The agent-hangup fault: each accepted stream is closed right after its OK. */
  hangUpAfterOk = false;
  private nextHostPort = 1_073_741_824;
  private readonly ttrpc = new TtrpcServer().register(Health, healthService());
  private readonly sockets = new Set<net.Socket>();
  /** A real guest's agent (qemu-guest.ts): each accepted CONNECT is piped to a new stream to it. */
  private forward: (() => net.Socket) | undefined;

  private constructor(
    private readonly server: net.Server,
    private readonly path: string,
    private readonly violation: (what: string) => void,
  ) {}

  /** The VMM creates the vsock socket when the device is set up: before the guest runs. */
  static async listen(path: string, violation: (what: string) => void): Promise<StandinGuest> {
    await rm(path, { force: true });
    const holder: { guest?: StandinGuest } = {};
    const server = net.createServer((sock) => holder.guest?.accept(sock));
    const guest = new StandinGuest(server, path, violation);
    holder.guest = guest;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    return guest;
  }

  /**
   * The guest booted; its agent listens on agentPort if the kernel command line tells it to serve
   * vsock there, as the real agent reads it (otherwise it would wait on a virtio-serial port these
   * VMMs do not have, and never answer: a violation of what the driver must pass).
   */
  agentUp(cmdline: string): void {
    let channel: AgentChannel;
    try {
      channel = agentChannelFromCmdline(cmdline);
    } catch (err) {
      this.violation(`guest kernel command line: ${String(err)}`);
      return;
    }
    if (channel.kind !== "vsock" || channel.port !== agentPort) {
      this.violation(`guest kernel command line ${JSON.stringify(cmdline)} does not put the agent on vsock port ${agentPort} (${agentVsockParam()})`);
      return;
    }
    this.listening = true;
  }

  /**
   * The agent is a real guest's, reached through `connect`: CONNECT is accepted at once (the
   * stream then waits until the guest agent opens its port, as QEMU's chardev does).
   */
  forwardTo(connect: () => net.Socket): void {
    this.forward = connect;
    this.listening = true;
  }

  async close(): Promise<void> {
    this.listening = false;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.path, { force: true });
  }

  /** Answers OK; bytes sent after the CONNECT line belong to the agent stream. */
  private accepted(sock: net.Socket, rest: Buffer): void {
    sock.write(`OK ${this.nextHostPort++}\n`);
    if (rest.length > 0) sock.unshift(rest);
  }

  private accept(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.once("close", () => this.sockets.delete(sock));
    sock.on("error", () => undefined);
    let line = "";
    const onData = (chunk: Buffer): void => {
      line += chunk.toString("latin1");
      const nl = line.indexOf("\n");
      if (nl < 0) {
        if (line.length > 64) {
          this.violation(`hybrid vsock: no CONNECT line within 64 bytes: ${JSON.stringify(line)}`);
          sock.destroy();
        }
        return;
      }
      sock.off("data", onData);
      const request = line.slice(0, nl);
      const m = /^CONNECT (\d+)$/.exec(request);
      if (m === null) {
        this.violation(`hybrid vsock: expected "CONNECT <port>", got ${JSON.stringify(request)}`);
        sock.destroy();
        return;
      }
      if (!this.listening || Number(m[1]) !== agentPort) {
        sock.destroy();
        return;
      }
      const rest = Buffer.from(line.slice(nl + 1), "latin1");
      if (this.forward === undefined) {
        this.accepted(sock, rest);
        if (this.hangUpAfterOk) {
          sock.end();
          return;
        }
        this.ttrpc.serve(sock);
        return;
      }
      // A real guest: OK only once its agent's port accepts the stream (until QEMU has created the
      // chardev socket nothing listens, and the VMM closes the connection, as for a guest not ready).
      sock.pause(); // what the host sends meanwhile waits for the pipe
      const upstream = this.forward();
      this.sockets.add(upstream);
      upstream.once("error", () => sock.destroy());
      upstream.once("close", () => sock.destroy());
      sock.once("close", () => upstream.destroy());
      upstream.once("connect", () => {
        this.accepted(sock, rest);
        sock.pipe(upstream);
        upstream.pipe(sock);
      });
    };
    sock.on("data", onData);
  }
}
