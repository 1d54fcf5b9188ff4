// Starting a process already inside given cgroups (src/util/start-in-cgroups.ts): the command as
// built, run through the real /bin/sh: into plain directories standing in for cgroups (their
// cgroup.procs is then a regular file holding the pid written), with paths and arguments no shell
// quoting could carry, and, as root, into real cgroups the test makes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, rmdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CGROUP_EXEC_FAILED, CGROUP_EXEC_NAME, startInCgroups } from "../../src/util/start-in-cgroups.js";
import { cgroupDirsByCpu, cgroupDirsOf, cgroupHierarchies, makeCgroup } from "../../src/sandbox/host-cgroup.js";

interface Ran {
  pid: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(binary: string, args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.once("error", reject);
    child.once("close", (status) => resolve({ pid: child.pid ?? 0, status, stdout, stderr }));
  });
}

const hostile = ["with space", "quote'\"", "$HOME `id` $(id)", "back\\slash\\n", "new\nline", "-n", "--", "*", ""];

void test("no dirs: the command as it is", () => {
  assert.deepEqual(startInCgroups([], "/usr/bin/qemu", ["-a", "b"]), { binary: "/usr/bin/qemu", args: ["-a", "b"] });
});

void test("dirs and command travel as arguments after a fixed script: $0, the dir count, the dirs, the command", () => {
  const cmd = startInCgroups(["/a b", "/c"], "prog", ["x", "y"]);
  assert.equal(cmd.binary, "/bin/sh");
  assert.equal(cmd.args[0], "-c");
  assert.deepEqual(cmd.args.slice(2), [CGROUP_EXEC_NAME, "2", "/a b", "/c", "prog", "x", "y"]);
  assert.equal(startInCgroups(["/other"], "p", []).args[1], cmd.args[1], "the script text never changes");
});

void test("the process writes its own pid into every dir's cgroup.procs, then execs the command with its arguments intact", async () => {
  const root = await mkdtemp(join(tmpdir(), "kata-ts-cgexec-"));
  try {
    const dirs = [];
    for (const name of ["plain", "with space", "quote'\"$x`y`", "back\\slash", "-dash", "new\nline"]) {
      const d = join(root, name);
      await mkdir(d);
      dirs.push(d);
    }
    // The exec'd command prints its pid and its arguments, one per NUL.
    const cmd = startInCgroups(dirs, "/bin/sh", ["-c", 'printf "%s\\0" "$$" "$@"', "printer", ...hostile]);
    const r = await run(cmd.binary, cmd.args);
    assert.equal(r.status, 0, r.stderr);
    const [pid, ...args] = r.stdout.split("\0").slice(0, -1);
    assert.equal(Number(pid), r.pid, "the exec'd command kept the spawned pid");
    assert.deepEqual(args, hostile);
    for (const d of dirs) assert.equal(await readFile(join(d, "cgroup.procs"), "utf8"), `${r.pid}\n`, d);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

void test("a dir that cannot be written: exit 126, a message naming it, and the command never runs", async () => {
  const root = await mkdtemp(join(tmpdir(), "kata-ts-cgexec-"));
  try {
    await mkdir(join(root, "ok"));
    const missing = join(root, "missing dir");
    const marker = join(root, "ran");
    const cmd = startInCgroups([join(root, "ok"), missing], "/usr/bin/touch", [marker]);
    const r = await run(cmd.binary, cmd.args);
    assert.equal(r.status, CGROUP_EXEC_FAILED);
    assert.match(r.stderr, new RegExp(`${CGROUP_EXEC_NAME}: cannot join cgroup ${missing}: the command was not started`));
    assert.equal(await stat(marker).catch(() => undefined), undefined, "the command did not run");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

const root = process.getuid?.() === 0;

void test("as root: a process started in a made cgroup is in it in every hierarchy; the caller is not; remove() takes it away", { skip: !root && "needs root" }, async () => {
  const mine = await cgroupDirsOf(process.pid);
  const path = `/kata-ts-cgexec-test-${process.pid}/pod`;
  const made = await makeCgroup(path);
  try {
    assert.equal(made.dirs.length, (await cgroupHierarchies()).length);
    const cmd = startInCgroups(made.dirs, "/bin/cat", ["/proc/self/cgroup"]);
    const r = await run(cmd.binary, cmd.args);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, made.dirs.length);
    for (const l of lines) assert.ok(l.endsWith(`:${path}`), `every hierarchy names the pod's cgroup: ${l}`);
    assert.deepEqual(await cgroupDirsOf(process.pid), mine, "the caller did not move");
    const split = await cgroupDirsByCpu(made.dirs);
    assert.deepEqual([...split.cpu, ...split.other].sort(), [...made.dirs].sort());
    assert.ok(split.cpu.length >= 1);
  } finally {
    await made.remove(2000);
  }
  for (const d of made.dirs) assert.equal(await stat(d).catch(() => undefined), undefined, `${d} removed`);
  for (const h of await cgroupHierarchies()) assert.equal(await stat(join(h.mount, `/kata-ts-cgexec-test-${process.pid}`)).catch(() => undefined), undefined, "its made parent too");
});

void test("as root: remove() does not wait on a parent it made that now holds another cgroup, and leaves it", { skip: !root && "needs root" }, async () => {
  const top = `/kata-ts-cgexec-test-${process.pid}-shared`;
  const a = await makeCgroup(`${top}/a`);
  const b = await makeCgroup(`${top}/b`);
  try {
    const t0 = performance.now();
    await a.remove(2000);
    assert.ok(performance.now() - t0 < 1000, `no wait on the busy parent: ${Math.round(performance.now() - t0)} ms`);
    for (const d of a.dirs) assert.equal(await stat(d).catch(() => undefined), undefined, `${d} removed`);
    for (const d of b.dirs) assert.ok(await stat(d), `${d} stays`);
  } finally {
    await b.remove();
    for (const h of await cgroupHierarchies()) await rmdir(join(h.mount, top)).catch(() => undefined);
  }
});
