// FifoIo against real FIFOs (mkfifo), as containerd hands them to the shim.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { pino } from "pino";
import { FifoIo } from "../../src/shim/fifo-io.js";
import { run } from "../../src/util/exec.js";

const log = pino({ level: "silent" });

async function withFifos(names: string[], fn: (paths: Record<string, string>) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kts-fifo-"));
  try {
    const paths: Record<string, string> = {};
    for (const n of names) {
      paths[n] = join(dir, n);
      await run("mkfifo", [paths[n] as string]);
    }
    await fn(paths);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Opens a reader on the FIFO, as containerd does before the task starts, and resolves once it is
 * open with what it will have read at EOF. Waiting for the open matters: a reader whose open runs
 * (on the libuv pool) only after the shim closed its end would block forever on a writerless FIFO.
 */
function openReader(path: string): Promise<{ text: Promise<string> }> {
  return new Promise((opened, failed) => {
    let text = "";
    let ended: (t: string) => void = () => undefined;
    let broke: (e: unknown) => void = () => undefined;
    const done = new Promise<string>((resolve, reject) => ((ended = resolve), (broke = reject)));
    done.catch(() => undefined); // a failed open is reported through failed(); the caller awaits done only once open
    createReadStream(path, "utf8")
      .on("open", () => opened({ text: done }))
      .on("data", (d) => (text += String(d)))
      .on("end", () => ended(text))
      .on("error", (e) => (broke(e), failed(e)));
  });
}

void test("shim fifo: output reaches the reader, EOF after the process's stream ends and IO closes", async () => {
  await withFifos(["out", "err"], async (p) => {
    const io = new FifoIo({ stdin: "", stdout: p.out as string, stderr: p.err as string, terminal: false }, log);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    // No reader yet: attaching must not block (the shim holds a read end itself).
    await io.attach({ stdout, stderr });
    const out = (await openReader(p.out as string)).text;
    const err = (await openReader(p.err as string)).text;
    stdout.end("hello\n");
    stderr.end("oops\n");
    await io.drained(5000);
    await io.close();
    assert.equal(await out, "hello\n");
    assert.equal(await err, "oops\n");
  });
});

void test("shim fifo: stdin flows from containerd's writer to the process, and its close is EOF", async () => {
  await withFifos(["in"], async (p) => {
    const io = new FifoIo({ stdin: p.in as string, stdout: "", stderr: "", terminal: false }, log);
    const stdin = new PassThrough();
    await io.attach({ stdin });
    let got = "";
    stdin.on("data", (d: Buffer) => (got += d.toString()));
    const ended = new Promise<void>((r) => stdin.once("end", () => r()));
    const writer = createWriteStream(p.in as string);
    writer.end("line one\nline two\n");
    await ended;
    assert.equal(got, "line one\nline two\n");
    await io.close();
  });
});
