// The hybrid vsock dialer against a real unix socket server that writes literal wire bytes, as
// Cloud Hypervisor and Firecracker do: CONNECT/OK, refusals while nothing listens in the guest,
// bytes that follow the OK line, the deadline; and kernel vsock's clear "not available".
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectHybridVsock, dialAgent } from "../../src/hypervisor/agent-channel/dial.js";
import { isKataError } from "../../src/util/errors.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kata-ts-hvsock-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A VMM-side hybrid vsock: `accept(line)` says what to answer to each CONNECT line (undefined: close). */
async function vmmSocket(name: string, accept: (line: string, n: number) => string | undefined): Promise<{ path: string; lines: string[]; close(): Promise<void> }> {
  const path = join(dir, name);
  const lines: string[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    let buf = "";
    sock.on("data", (c) => {
      buf += c.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      const reply = accept(line, lines.length);
      if (reply === undefined) sock.destroy();
      else sock.write(reply);
    });
  });
  await new Promise<void>((r) => server.listen(path, () => r()));
  return {
    path,
    lines,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

void test("hybrid vsock: CONNECT <port>\\n, then OK <n>\\n; bytes sent right after OK reach the caller's stream", async () => {
  const vmm = await vmmSocket("ok.sock", () => "OK 1073741824\nhello from the guest");
  const sock = await connectHybridVsock(vmm.path, 1024, 2000);
  const data = await new Promise<string>((resolve) => {
    sock.once("data", (c: Buffer) => resolve(c.toString()));
    sock.resume();
  });
  assert.deepEqual(vmm.lines, ["CONNECT 1024"]);
  assert.equal(data, "hello from the guest");
  sock.destroy();
  await vmm.close();
});

void test("hybrid vsock: connections closed while the guest does not listen yet are retried until it accepts", async () => {
  const vmm = await vmmSocket("late.sock", (_line, n) => (n < 4 ? undefined : "OK 7\n"));
  const sock = await dialAgent({ transport: "hybrid-vsock", path: vmm.path, port: 1024 }, { timeoutMs: 5000 });
  assert.equal(vmm.lines.length, 4, "three refusals, then the guest accepted");
  sock.destroy();
  await vmm.close();
});

void test("hybrid vsock: an answer other than OK is a refusal naming what came back; the dial gives up at its deadline", async () => {
  const vmm = await vmmSocket("refuse.sock", () => "FAILURE no listener\n");
  await assert.rejects(connectHybridVsock(vmm.path, 1024, 2000), (e) => isKataError(e, "UNAVAILABLE") && /refused CONNECT 1024: "FAILURE no listener"/.test(e.message));
  const started = Date.now();
  await assert.rejects(
    dialAgent({ transport: "hybrid-vsock", path: vmm.path, port: 1024 }, { timeoutMs: 400 }),
    (e) => isKataError(e, "DEADLINE_EXCEEDED") && /did not accept within 400 ms/.test(e.message),
  );
  assert.ok(Date.now() - started < 2000);
  await vmm.close();
});

void test("hybrid vsock: a missing socket is retried (the VMM creates it late) and an abort ends the dial", async () => {
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 200);
  await assert.rejects(
    dialAgent({ transport: "hybrid-vsock", path: join(dir, "absent.sock"), port: 1024 }, { timeoutMs: 5000, signal: stop.signal }),
    (e) => isKataError(e, "CANCELLED"),
  );
});

void test("kernel vsock: not available from Node, said plainly (UNIMPLEMENTED)", async () => {
  await assert.rejects(
    dialAgent({ transport: "vsock", cid: 3, port: 1024 }, { timeoutMs: 1000 }),
    (e) => isKataError(e, "UNIMPLEMENTED") && /Node has no AF_VSOCK/.test(e.message),
  );
});
