// kata-ts demo: a runc pod and a kata-ts pod side by side on a private containerd; prints each
// pod's kernel next to the host's and removes everything (also on Ctrl-C). Logic: src/demo/.
import { parseArgs } from "node:util";
import { DemoInterrupted, runDemo } from "../../demo/run-demo.js";
import { describeError } from "../../util/errors.js";

const USAGE = `usage: kata-ts demo
  Starts a private containerd (own network namespace, temp dir) with the kata-ts handler, runs a
  runc pod and a kata-ts pod through CRI, prints \`uname -r\` of the host and of each pod, and
  cleans everything up. Needs root and the guest assets (npm run demo builds them first).
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let interrupts = 0;
  let interrupt!: () => void;
  const interrupted = new Promise<void>((r) => (interrupt = r));
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts > 1) {
      process.stderr.write(`kata-ts demo: ${sig} again, exiting without finishing the cleanup\n`);
      process.exit(130);
    }
    process.stderr.write(`\nkata-ts demo: ${sig}: stopping and cleaning up (press Ctrl-C again to skip)\n`);
    interrupt();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await runDemo({ interrupted });
    return 0;
  } catch (err) {
    if (err instanceof DemoInterrupted) return 130;
    process.stderr.write(`kata-ts demo: ${describeError(err)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
