// `kata-ts check` and `kata-ts setup` as a user runs them: the real binaries, the real host.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const cli = join(import.meta.dirname, "..", "..", "..", "bin", "kata-ts.js");
const exec = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function kataTs(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cli, ...args], { env, timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

void test("check --json reports every capability, with the real QEMU version, and exits 0 on a complete host", async () => {
  const res = await kataTs(["check", "--json"]);
  assert.equal(res.code, 0, res.stderr);
  const report = JSON.parse(res.stdout) as { ok: boolean; capabilities: { name: string; status: string; detail: string; required: boolean }[] };
  assert.equal(report.ok, true);
  const names = report.capabilities.map((c) => c.name);
  for (const n of ["qemu", "virtiofsd", "kvm", "vhost-vsock", "tun", "tc-mirred", "port-forward-nat", "cgroup", "containerd", "crun", "cni-plugins", "cloud-hypervisor", "firecracker"]) {
    assert.ok(names.includes(n), `report lacks ${n}`);
  }
  const { stdout: qemuVersion } = await exec("qemu-system-x86_64", ["--version"]);
  const qemu = report.capabilities.find((c) => c.name === "qemu")!;
  assert.equal(qemu.detail, qemuVersion.split("\n")[0]);
  const kvm = report.capabilities.find((c) => c.name === "kvm")!;
  assert.ok(["ok", "unusable", "unverified", "absent"].includes(kvm.status), kvm.status);
  assert.equal(kvm.required, false);
});

void test("check prints a table, one line per capability", async () => {
  const res = await kataTs(["check"]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^qemu\s+ok\s+QEMU emulator version/m);
  assert.match(res.stdout, /^containerd\s+ok\s+containerd /m);
});

void test("a second setup is a no-op: no apt-get, assets up to date", async () => {
  // A stand-in apt-get first on PATH records any call: a no-op setup must not make one.
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-setup-"));
  try {
    const marker = join(dir, "apt-get-called");
    await writeFile(join(dir, "apt-get"), `#!/bin/sh\necho "$@" >> ${marker}\nexit 1\n`);
    await chmod(join(dir, "apt-get"), 0o755);
    const res = await kataTs(["setup"], { ...process.env, PATH: `${dir}:${process.env.PATH ?? ""}` });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /all Debian packages present/);
    assert.match(res.stderr, /guest assets in .* are up to date/);
    await assert.rejects(readFile(marker, "utf8"), { code: "ENOENT" }, "setup called apt-get");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("an unknown command names itself and exits 2 with the usage", async () => {
  const res = await kataTs(["frobnicate"]);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /unknown command "frobnicate"/);
  assert.match(res.stderr, /usage: kata-ts <command>/);
});

void test("check exits 1 and names the must-haves it cannot find", async () => {
  // An empty PATH hides QEMU, containerd and crun from the probes, as on a host without them.
  const dir = await mkdtemp(join(tmpdir(), "kata-ts-emptypath-"));
  try {
    const res = await kataTs(["check"], { ...process.env, PATH: dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /missing must-haves: .*qemu/);
    assert.match(res.stderr, /containerd/);
    assert.match(res.stderr, /crun/);
    assert.match(res.stdout, /^qemu\s+missing\s+.*apt-get install qemu-system-x86/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
