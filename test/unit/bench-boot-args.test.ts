// bench/boot's command line: --help prints the usage and exits 0; a bad option or value exits 2
// with a message naming it and the usage, before any VM is booted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const BOOT_JS = fileURLToPath(new URL("../../bench/boot.js", import.meta.url));

function runBench(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BOOT_JS, ...args], { encoding: "utf8", timeout: 60_000, env: { ...process.env, KATA_TS_ASSETS_DIR: "/nonexistent-kata-ts-assets" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

void test("bench/boot --help prints the usage with the default of 7 boots and exits 0", () => {
  const r = runBench(["--help"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: node dist\/bench\/boot\.js/);
  assert.match(r.stdout, /--boots N\s+boots per variant \(default 7/);
  assert.match(r.stdout, /boot_to_agent_ms, floor_ms, guest_ram_touched_mib,\s+vmm_pss_mib, vmm_rss_mib/);
});

void test("bench/boot: an unknown option or a bad number exits 2 naming it, without a stack trace", () => {
  const unknown = runBench(["--bots", "3"]);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Unknown option '--bots'/);
  assert.match(unknown.stderr, /usage: node dist\/bench\/boot\.js/);
  assert.doesNotMatch(unknown.stderr, /\n\s+at /, "no stack trace");
  const bad = runBench(["--boots", "x"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--boots must be an integer >= 1, got "x"/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
});
