// containerd-shim-kata-ts-v2: the containerd runtime v2 shim. One file per action; this one only
// parses Go-style flags and dispatches (each action loaded on demand: `start` stays light). stdout carries protocol output only (an address or a
// DeleteResponse); errors go to stderr, which containerd shows together with stdout on failure.
import { describeError } from "../util/errors.js";
import { parseShimArgs } from "./flags.js";

async function readStdin(): Promise<Uint8Array> {
  if (process.stdin.isTTY) return new Uint8Array();
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function main(argv: string[]): Promise<number> {
  const { flags, action } = parseShimArgs(argv);
  if (flags.version) {
    process.stdout.write(`containerd-shim-kata-ts-v2: ${(await import("./translate.js")).shimVersion}\n`);
    return 0;
  }
  switch (action) {
    case "start":
      process.stdout.write(await (await import("./start.js")).start(flags, await readStdin()));
      return 0;
    case "delete":
      process.stdout.write(await (await import("./delete.js")).deleteAction(flags));
      return 0;
    case "serve":
      await (await import("./serve.js")).serve(flags);
      return -1; // keep running
    default:
      process.stderr.write(`containerd-shim-kata-ts-v2: unknown action "${action ?? ""}" (expected start, delete)\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`containerd-shim-kata-ts-v2: ${describeError(err)}\n`);
    process.exitCode = 1;
  },
);
