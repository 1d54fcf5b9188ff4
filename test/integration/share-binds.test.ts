// The share's mount plumbing (src/sandbox/mounts.ts) on a host whose state dir sits on a shared
// mount, as /run does under systemd (this machine's / is private, so the test makes its own
// shared "root"). A stand-in for virtiofsd (a process in a slave mount namespace, as virtiofsd
// makes its own) shows what propagates where. No VM: the e2e test host-mounts.test.ts runs the real one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run, tryRun } from "../../src/util/exec.js";
import { bindThroughStage, makeSharedMountPoint, unmountAll, withStage } from "../../src/sandbox/mounts.js";
import { mountsUnder, unmountAllUnder } from "../harness/mounts.js";

interface MountRow {
  mp: string;
  opts: string;
  tags: string[];
}

async function mountTable(pid: number | "self"): Promise<MountRow[]> {
  const rows: MountRow[] = [];
  for (const line of (await readFile(`/proc/${pid}/mountinfo`, "utf8")).split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (f[4] === undefined || sep < 0) continue;
    rows.push({ mp: f[4], opts: f[5] ?? "", tags: f.slice(6, sep) });
  }
  return rows;
}

async function sharedTmpfs(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run("mount", ["-t", "tmpfs", "-o", "size=1m", "kts-share-test", dir]);
  await run("mount", ["--make-shared", dir]);
}

void test("binds into the share: read-only on every submount in virtiofsd's namespace, no propagation back to the host, teardown keeps host mounts", { timeout: 60_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), "kts-share-"));
  const vfs = { pid: undefined as number | undefined, kill: () => undefined as unknown };
  try {
    await sharedTmpfs(root); // "/" of a systemd host
    const rw = join(root, "host", "rw");
    const ro = join(root, "host", "ro");
    for (const v of [rw, ro]) {
      await sharedTmpfs(v);
      await sharedTmpfs(join(v, "sub"));
      await writeFile(join(v, "sub", "f"), "host\n");
    }
    await mkdir(join(rw, "late"));
    const share = join(root, "state", "shared");
    await mkdir(share, { recursive: true });
    await makeSharedMountPoint(share);
    const rootGroup = (await mountTable("self")).find((r) => r.mp === root)?.tags.find((t) => t.startsWith("shared:"));
    const shareRow = (await mountTable("self")).filter((r) => r.mp === share);
    assert.equal(shareRow.length, 1);
    assert.ok(shareRow[0]?.tags.some((t) => t.startsWith("shared:")) && !shareRow[0].tags.includes(rootGroup ?? "none"), `the share is a peer group of its own: ${shareRow[0]?.tags.join(" ")}`);

    // virtiofsd's own namespace: a slave copy of everything.
    const child = spawn("unshare", ["-m", "--propagation", "slave", "sleep", "600"], { stdio: "ignore" });
    vfs.pid = child.pid;
    vfs.kill = () => child.kill("SIGKILL");
    const ourNs = await readlink("/proc/self/ns/mnt");
    for (let i = 0; i < 100 && (await readlink(`/proc/${child.pid}/ns/mnt`).catch(() => ourNs)) === ourNs; i++) await sleep(20);
    const pid = child.pid as number;

    const c = join(share, "containers", "c1");
    await mkdir(join(c, "rw"), { recursive: true });
    await mkdir(join(c, "ro"));
    await writeFile(join(c, "file"), "");
    await withStage(join(root, "state", "stage", "c1"), async (stage) => {
      await bindThroughStage(rw, join(c, "rw"), stage, { readonly: false, recursive: true, propagation: "slave", isDirectory: true });
      await bindThroughStage(ro, join(c, "ro"), stage, { readonly: true, recursive: true, propagation: "private", isDirectory: true });
      await bindThroughStage(join(ro, "sub", "f"), join(c, "file"), stage, { readonly: true, recursive: false, propagation: "private", isDirectory: false });
    });
    assert.deepEqual(await mountsUnder([join(root, "state", "stage")]), [], "the stage is gone");

    const inVfs = await mountTable(pid);
    for (const mp of [join(c, "ro"), join(c, "ro", "sub"), join(c, "file")]) {
      const row = inVfs.find((r) => r.mp === mp);
      assert.ok(row, `${mp} reached virtiofsd's namespace`);
      assert.match(row.opts, /^ro\b/, `${mp} is read-only in virtiofsd's namespace`);
    }
    const write = await tryRun("nsenter", ["-t", String(pid), "-m", "sh", "-c", `echo x > ${join(c, "ro", "sub", "w")}`]);
    assert.equal(write, undefined, "virtiofsd cannot write the read-only submount");
    assert.equal(await readFile(join(c, "file"), "utf8"), "host\n", "a file is bound, not copied");

    // Host -> share -> virtiofsd for the slave copy; each copy is in no host peer group.
    await sharedTmpfs(join(rw, "late"));
    await writeFile(join(rw, "late", "f"), "late\n");
    assert.equal(await readFile(join(c, "rw", "late", "f"), "utf8"), "late\n");
    assert.ok((await mountTable(pid)).some((r) => r.mp === join(c, "rw", "late")), "the late host mount reached virtiofsd");
    const hostGroups = new Set((await mountTable("self")).filter((r) => r.mp.startsWith(join(root, "host"))).flatMap((r) => r.tags.filter((t) => t.startsWith("shared:"))));
    for (const r of (await mountTable("self")).filter((r) => r.mp.startsWith(c))) {
      assert.ok(!r.tags.some((t) => hostGroups.has(t)), `${r.mp} is no peer of a host mount: ${r.tags.join(" ")}`);
    }

    const hostBefore = (await mountsUnder([join(root, "host")])).sort();
    await unmountAll(c);
    await unmountAll(share);
    assert.deepEqual((await mountsUnder([join(root, "host")])).sort(), hostBefore, "every host mount is still there");
    assert.deepEqual(await mountsUnder([join(root, "state")]), [], "no copy left (none hidden under the share either)");
    assert.deepEqual((await mountTable(pid)).filter((r) => r.mp.startsWith(`${c}/`)), [], "virtiofsd's copies went with ours");
  } finally {
    vfs.kill();
    await unmountAllUnder([root]);
    await rm(root, { recursive: true, force: true });
  }
});
