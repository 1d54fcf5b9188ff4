// src/util/json-line-socket.ts over real unix sockets in a temp dir: one JSON line each way between
// callJsonLine and readJsonLine/answerJsonLine, and each way a line can fail on either side (nothing
// listens, a deadline, a line too long, not JSON, the peer closing first) gives its code, and every
// socket is closed afterwards: the other end sees the close, and no socket fd is left in this process.
import { after, before, test as nodeTest } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readdir, readlink, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isKataError, type KataErrorCode } from "../../src/util/errors.js";
import { answerJsonLine, callJsonLine, readJsonLine } from "../../src/util/json-line-socket.js";

/** Every test here ends within seconds; a hang is a failure, not a stuck run. */
const test = (name: string, fn: () => Promise<void>): Promise<void> => nodeTest(name, { timeout: 60_000 }, fn);
const patient = 30_000; // a deadline that must not fire, on a loaded host
const short = 300; // a deadline that must fire

let dir = "";
let socketsBefore = 0;
let n = 0;

async function openSockets(): Promise<number> {
  let count = 0;
  for (const fd of await readdir("/proc/self/fd")) {
    if ((await readlink(`/proc/self/fd/${fd}`).catch(() => "")).startsWith("socket:")) count++;
  }
  return count;
}

/** A server on a fresh socket path; `closed` has a promise per accepted socket, settled when it closes. */
async function listen(onConnection: (sock: Socket) => void): Promise<{ path: string; server: Server; closed: Promise<void>[] }> {
  const path = join(dir, `s${n++}.sock`);
  const server = createServer();
  const closed: Promise<void>[] = [];
  server.on("connection", (sock) => {
    closed.push(once(sock, "close").then(() => undefined));
    sock.on("error", () => undefined);
    onConnection(sock);
    sock.resume(); // reads on (to its end) where the handler does not
  });
  server.listen(path);
  await once(server, "listening");
  return { path, server, closed };
}

async function stop(server: Server, closed: Promise<void>[]): Promise<void> {
  await Promise.all(closed);
  server.close();
  await once(server, "close");
}

function rejectsWith(code: KataErrorCode, message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isKataError(err, code), `want ${code}, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  };
}

const call = (path: string, timeoutMs = patient, maxBytes = 1024): Promise<unknown> =>
  callJsonLine(path, { op: "ping" }, { peer: "the test server", unreachableHint: "start the test server", maxBytes, timeoutMs });
const read = (sock: Socket, timeoutMs = patient, maxBytes = 1024): Promise<unknown> => readJsonLine(sock, { what: "a test request", maxBytes, timeoutMs });

/** A raw client: sends `chunks` (then ends, if asked) and collects what the server sends until it closes. */
async function rawClient(path: string, chunks: (string | Buffer)[], end: boolean): Promise<string> {
  const sock = createConnection(path);
  sock.on("error", () => undefined); // a server that closes while this writes: the test reads what it answered
  await once(sock, "connect");
  let got = "";
  sock.setEncoding("utf8");
  sock.on("data", (c: string) => (got += c));
  const closed = once(sock, "close");
  for (const c of chunks) {
    sock.write(c);
    await new Promise((r) => setTimeout(r, 20));
  }
  if (end) sock.end();
  await closed;
  return got;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kts-jsonline-"));
  socketsBefore = await openSockets();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
  assert.equal(await openSockets(), socketsBefore, "no socket left open in this process");
});

void test("one line each way: callJsonLine's request reaches readJsonLine, answerJsonLine's answer comes back, both sockets close", async () => {
  let request: unknown;
  const { path, server, closed } = await listen((sock) => {
    void read(sock).then((req) => {
      request = req;
      answerJsonLine(sock, { ok: true, echo: req, text: "é€𝄞" });
    });
  });
  assert.deepEqual(await call(path), { ok: true, echo: { op: "ping" }, text: "é€𝄞" });
  assert.deepEqual(request, { op: "ping" });
  await stop(server, closed);
});

void test("a line split anywhere (inside a UTF-8 character too) and exactly maxBytes long is read whole; bytes after the newline are not", async () => {
  const answers: unknown[] = [];
  const { path, server, closed } = await listen((sock) => {
    void read(sock, patient, 20).then((req) => {
      answers.push(req);
      answerJsonLine(sock, { got: req });
    });
  });
  const line = Buffer.from('{"s":"aé€𝄞bc"}'); // 20 bytes: é, € and 𝄞 are 2, 3 and 4
  assert.equal(line.length, 20);
  const got = await rawClient(path, [line.subarray(0, 8), line.subarray(8, 12), Buffer.concat([line.subarray(12), Buffer.from("\n{garbage")])], false);
  assert.deepEqual(answers, [{ s: "aé€𝄞bc" }]);
  assert.equal(got, `${JSON.stringify({ got: { s: "aé€𝄞bc" } })}\n`, "one answer line, then the server closed");
  await stop(server, closed);
});

void test("callJsonLine: nothing listening is UNAVAILABLE with the caller's hint (no file, and a file that is no socket)", async () => {
  await assert.rejects(call(join(dir, "absent.sock")), rejectsWith("UNAVAILABLE", /^cannot connect to the test server: .*ENOENT.*; start the test server$/));
  const notSocket = join(dir, "plain-file");
  await writeFile(notSocket, "");
  await assert.rejects(call(notSocket), rejectsWith("UNAVAILABLE", /^cannot connect to the test server: .*ECONNREFUSED/));
});

void test("callJsonLine: a server that never answers is DEADLINE_EXCEEDED, and the client's socket is closed", async () => {
  const { path, server, closed } = await listen(() => undefined);
  await assert.rejects(call(path, short), rejectsWith("DEADLINE_EXCEEDED", /^the test server did not answer within 300 ms$/));
  await stop(server, closed); // the server's end saw the client close
});

void test("callJsonLine: an answer longer than maxBytes is INTERNAL, and the client's socket is closed", async () => {
  const { path, server, closed } = await listen((sock) => sock.write("x".repeat(1025)));
  await assert.rejects(call(path), rejectsWith("INTERNAL", /^the test server sent more than 1024 bytes without ending its answer; is another program listening on /));
  await stop(server, closed);
});

void test("callJsonLine: an answer that is not JSON is INTERNAL with the parse error as cause, and the client's socket is closed", async () => {
  const { path, server, closed } = await listen((sock) => sock.write("HTTP/1.1 400 Bad Request\r\n"));
  await assert.rejects(call(path), (err: unknown) => {
    assert.ok(isKataError(err, "INTERNAL"));
    assert.match(err.message, /answered a line that is not JSON/);
    assert.ok(err.cause instanceof SyntaxError);
    return true;
  });
  await stop(server, closed);
});

void test("callJsonLine: a server that closes before a whole answer is UNAVAILABLE", async () => {
  const { path, server, closed } = await listen((sock) => {
    sock.once("data", () => sock.end('{"ok":'));
  });
  await assert.rejects(call(path), rejectsWith("UNAVAILABLE", /^the test server closed the connection without an answer$/));
  await stop(server, closed);
});

/** A server whose readJsonLine failure is answered as an error line; resolves with what it read. */
async function erroringServer(timeoutMs: number): Promise<{ path: string; failure: Promise<unknown>; done: () => Promise<void> }> {
  let failed!: (err: unknown) => void;
  const failure = new Promise<unknown>((resolve) => (failed = resolve));
  const { path, server, closed } = await listen((sock) => {
    void read(sock, timeoutMs).then(
      () => answerJsonLine(sock, { ok: true }),
      (err: unknown) => {
        failed(err);
        answerJsonLine(sock, { ok: false, code: isKataError(err) ? err.code : "?" });
      },
    );
  });
  return { path, failure, done: () => stop(server, closed) };
}

void test("readJsonLine: no line within the deadline is DEADLINE_EXCEEDED; the error answer reaches the client and the socket closes", async () => {
  const s = await erroringServer(short);
  const got = await rawClient(s.path, [], false);
  assert.ok(isKataError(await s.failure, "DEADLINE_EXCEEDED"));
  assert.match(String(await s.failure), /a test request did not arrive within 300 ms/);
  assert.equal(got, '{"ok":false,"code":"DEADLINE_EXCEEDED"}\n');
  await s.done();
});

void test("readJsonLine: a line longer than maxBytes is INVALID_ARGUMENT, answered, closed", async () => {
  const s = await erroringServer(patient);
  const got = await rawClient(s.path, ["y".repeat(600), "y".repeat(600)], false);
  assert.match(String(await s.failure), /a test request is longer than 1024 bytes/);
  assert.equal(got, '{"ok":false,"code":"INVALID_ARGUMENT"}\n');
  await s.done();
});

void test("readJsonLine: a line that is not JSON is INVALID_ARGUMENT, answered, closed", async () => {
  const s = await erroringServer(patient);
  const got = await rawClient(s.path, ["{op: ping}\n"], false);
  assert.match(String(await s.failure), /a test request is not JSON: /);
  assert.equal(got, '{"ok":false,"code":"INVALID_ARGUMENT"}\n');
  await s.done();
});

void test("readJsonLine: a client that closes before a whole line is UNAVAILABLE; answering it is harmless", async () => {
  const s = await erroringServer(patient);
  await rawClient(s.path, ['{"op":'], true);
  assert.ok(isKataError(await s.failure, "UNAVAILABLE"));
  assert.match(String(await s.failure), /the connection closed before a test request arrived/);
  await s.done();
});
