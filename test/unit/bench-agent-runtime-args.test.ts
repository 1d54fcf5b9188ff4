// bench/agent-runtime's command line: --help prints the usage and exits 0; a bad option or value
// exits 2 with a message naming it and the usage, before anything is built or fetched.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const BENCH_JS = fileURLToPath(new URL("../../bench/agent-runtime.js", import.meta.url));

function runBench(args: string[]): { status: number | null; stdout: string; stderr: string } {
  // A missing --bun would make the bench fetch Bun with npm: every case here must stop before that.
  const r = spawnSync(process.execPath, [BENCH_JS, ...args], { encoding: "utf8", timeout: 60_000, env: { ...process.env, KATA_TS_CACHE_DIR: "/nonexistent-kata-ts-cache" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

void test("bench/agent-runtime --help prints the usage with its variants and the --json figures, and exits 0", () => {
  const r = runBench(["--help"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: node dist\/bench\/agent-runtime\.js/);
  assert.match(r.stdout, /--runs N\s+runs per variant \(default 5\)/);
  assert.match(r.stdout, /node-agent, alt-node-agent, node-agent-script, bun-agent, bun-agent-jit, bun-agent-bytecode/);
  assert.match(r.stdout, /bun_agent_vs_node_agent_cpu/);
});

void test("bench/agent-runtime: an unknown option, a bad number, an unknown variant, alt-node without its path or a missing binary exit 2 naming it", () => {
  const cases: [string[], RegExp][] = [
    [["--rounds", "3"], /Unknown option '--rounds'/],
    [["--runs", "0"], /--runs must be an integer >= 1, got "0"/],
    [["--variants", "node-agent,deno-agent"], /--variants: unknown variant "deno-agent"/],
    [["--variants", ","], /--variants names no variant/],
    [["--variants", "alt-node-agent"], /the alt-node variants need --alt-node PATH/],
    [["--bun", "/nonexistent/bun"], /--bun \/nonexistent\/bun: no such file/],
  ];
  for (const [args, message] of cases) {
    const r = runBench(args);
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /usage: node dist\/bench\/agent-runtime\.js/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    assert.equal(r.stdout, "", "nothing was prepared");
  }
});
