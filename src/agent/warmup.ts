// Image build time only, inside node's snapshot builder: the agent's start-up path and one
// Health.Check are run once, so the code they need is compiled before the heap is serialized
// instead of being compiled lazily in the guest, where V8's parser and compiler run under TCG.
// - the first request: the agent's real ttRPC server and a client over an in-memory pipe (framing,
//   protobuf encode/decode, dispatch, the handler);
// - the same request read from and answered into a file through VirtioPort (the port's reader
//   loop, its session stream and fs.read/fs.write callbacks);
// - what main() runs before it is ready and just after: a log line (node's stderr stream on the
//   console tty), fs/promises reads and writes (the command line, releaseBootMemory's sysctl
//   writes, here to scratch files), the port lookup.
// Measured in the guest before this (load ~20, ms of guest time): the first log line 129-572 and
// the first fs/promises read 144-557 of main()'s 240-1230 ms to ready (docs/guest.md).
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, TtrpcClient, type TtrpcServer } from "../protocol/ttrpc/index.js";
import { Health } from "../protocol/gen/katats/agent/v1/health_pb.js";
import { releaseBootMemory } from "./boot-memory.js";
import { findVirtioPort, VirtioPort } from "./virtio-port.js";
import { KataError } from "../util/errors.js";
import { pipePair } from "./pipe-pair.js";

/** Answers one Health.Check over an in-memory pipe; returns the bytes of the client's request. */
export async function warmUpFirstRequest(server: TtrpcServer): Promise<Buffer> {
  const [a, b] = pipePair(true);
  server.serve(b);
  const client = new TtrpcClient(a);
  try {
    await createClient(client, Health).check({}, { timeoutMs: 60_000 });
    return Buffer.concat(a.written);
  } finally {
    client.close();
    a.destroy();
    b.destroy();
  }
}

/** The start-up path of main() and the port's reader, with `request` (a ttRPC request's bytes) served from a scratch file. */
/** Returns the size of the reply written through VirtioPort. */
export async function warmUpStartPath(server: TtrpcServer, request: Buffer, log: (message: string) => void): Promise<number> {
  log("snapshot warm-up: start-up path");
  findVirtioPort("kata-ts-warm-up");
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-warm-up-"));
  try {
    const [order, drop, portFile] = ["order", "drop", "port"].map((f) => join(dir, f)) as [string, string, string];
    await Promise.all([writeFile(order, ""), writeFile(drop, ""), writeFile(portFile, request)]);
    await readFile("/proc/cmdline", "utf8");
    await releaseBootMemory(log, { reportingOrder: order, dropCaches: drop, cmdline: "/proc/cmdline" });
    const port = new VirtioPort(portFile);
    const served = port.serve((stream) => server.serve(stream));
    // The reply is written after the request in the same file. The port is closed whatever
    // happens: its idle poll would keep the builder's event loop, and so the build VM, alive.
    let replyBytes = 0;
    try {
      for (let i = 0; i < 500 && replyBytes <= 0; i++) {
        await sleep(10);
        replyBytes = (await stat(portFile)).size - request.length;
      }
    } finally {
      port.close();
      await served.catch(() => undefined);
    }
    if (replyBytes <= 0) throw new KataError("DEADLINE_EXCEEDED", "the request served through VirtioPort from a file got no reply within 5 s");
    return replyBytes;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
