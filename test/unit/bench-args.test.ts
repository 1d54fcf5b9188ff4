// The other benches' command lines (bench/boot's: bench-boot-args.test.ts): --help prints the usage
// and exits 0; an unknown option or a bad number exits 2 with a message naming it and the usage,
// before any containerd, VM or process is started.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

function runBench(name: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const js = fileURLToPath(new URL(`../../bench/${name}.js`, import.meta.url));
  const r = spawnSync(process.execPath, [js, ...args], { encoding: "utf8", timeout: 60_000, env: { ...process.env, KATA_TS_ASSETS_DIR: "/nonexistent-kata-ts-assets", ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// [bench, an option its usage lists with its default, a bad value for it, the message]
const cases: [string, RegExp, string[], RegExp, Record<string, string>?][] = [
  ["density", /--pods N\s+.*\(default 10\)/, ["--pods", "0"], /--pods must be an integer >= 1, got "0"/],
  ["exec-phases", /--runs N\s+.*\(default 10\)/, ["--runs", "abc"], /--runs must be an integer >= 1, got "abc"/],
  ["exec-phases", /AB_TB=MiB/, [], /AB_TB must be an integer >= 1, got "big"/, { AB_TB: "big" }],
  ["guest-idle", /--settle-s S\s+.*\(default 20\)/, ["--vms", "0"], /--vms must be an integer >= 1, got "0"/],
  ["idle-reclaim", /--idle-s S\s+.*\(default 60\)/, ["--vms", "0"], /--vms must be an integer >= 1, got "0"/],
  ["guest-timers", /--rounds N\s+.*\(default 3\)/, ["--idle-s", "0"], /--idle-s must be an integer >= 1, got "0"/],
  ["network", /--samples N\s+.*\(default 50\)/, ["--mib", "1.5"], /--mib must be an integer >= 1, got "1.5"/],
  ["overhead", /--window-s S\s+.*\(default 15\)/, ["--window-s", "x"], /--window-s must be a number >= 1, got "x"/],
  ["pod-start", /--burst N\s+.*\(default 10\)/, ["--runs", "abc"], /--runs must be an integer >= 1, got "abc"/],
  ["run", /BENCH_N=N/, [], /BENCH_N must be an integer >= 1, got "x"/, { BENCH_N: "x" }],
  ["shim-startup", /--runs N\s+.*\(default 10\)/, ["--shim", "nofile"], /--shim must be NAME=FILE, got "nofile"/],
  ["shim-memory", /--rpcs N\s+.*\(default 20000\)/, ["--rpcs", "1"], /--rpcs must be an integer >= 2, got "1"/],
  ["vmm-variants", /--per N\s+.*\(default 2\)/, ["--variant", "a:tb=x"], /variant "a:tb=x": tb must be a whole number of MiB, got "x"/],
  ["vmm-variants", /--variant SPEC/, ["--variant", "a:", "--per", "0"], /--per must be an integer >= 1, got "0"/],
  ["vmm-variants", /--variant SPEC/, ["--variant", "a:size=1"], /unknown or empty key "size" \(known: env, mem, tb, huge, splitwx, assets\)/],
  ["webhook", /--concurrency N\s+.*\(default 50\)/, ["--requests", "abc"], /--requests must be an integer >= 1, got "abc"/],
];

for (const [name, listed, badArgs, message, env] of cases) {
  const usage = new RegExp(`usage: node dist/bench/${name}\\.js`);
  void test(`bench/${name} --help prints the usage and exits 0`, () => {
    const r = runBench(name, ["--help"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, usage);
    assert.match(r.stdout, listed);
  });
  void test(`bench/${name}: an unknown option or a bad value exits 2 naming it, without a stack trace (${message.source})`, () => {
    const unknown = runBench(name, ["--bogus"]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /Unknown option '--bogus'/);
    assert.match(unknown.stderr, usage);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /, "no stack trace");
    const bad = runBench(name, badArgs, env);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, message);
    assert.match(bad.stderr, usage);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
  });
}
