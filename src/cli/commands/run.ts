// kata-ts run: run one container in a fresh VM. Thin: parses flags, wires the terminal and
// signals, and calls runOnce (src/sandbox/run-once.ts).
import { parseArgs } from "node:util";
import { KataError, isKataError } from "../../util/errors.js";
import { hostLimits, requireFitsHost } from "../../host/limits.js";
import { runOnce } from "../../sandbox/run-once.js";

const USAGE = `usage: kata-ts run [options] --rootfs DIR -- CMD [ARGS...]
       kata-ts run [options] --bundle DIR

  -t, --tty              give the container a terminal
  -i, --interactive      keep stdin open and send it to the container
  -e, --env K=V          set an environment variable (repeatable)
  -w, --cwd DIR          working directory in the container
  -u, --user UID[:GID]   user to run as
  -v, --volume HOST:CTR  bind-mount a host directory (repeatable)
      --memory-limit MiB container memory limit
      --vm-memory MiB    VM memory (default 512)
      --cpus N           VM vCPUs (default 1)
      --id ID            sandbox id (default: random)
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      rootfs: { type: "string" },
      bundle: { type: "string" },
      tty: { type: "boolean", short: "t", default: false },
      interactive: { type: "boolean", short: "i", default: false },
      env: { type: "string", short: "e", multiple: true, default: [] },
      cwd: { type: "string", short: "w" },
      user: { type: "string", short: "u" },
      volume: { type: "string", short: "v", multiple: true, default: [] },
      "memory-limit": { type: "string" },
      "vm-memory": { type: "string" },
      cpus: { type: "string" },
      id: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.bundle === undefined && values.rootfs === undefined) throw new KataError("INVALID_ARGUMENT", `give --rootfs DIR or --bundle DIR\n\n${USAGE}`);
  if (values.rootfs !== undefined && positionals.length === 0) throw new KataError("INVALID_ARGUMENT", `missing command: kata-ts run --rootfs DIR -- CMD [ARGS...]`);
  const [uid, gid] = (values.user ?? "0").split(":").map((s) => Number.parseInt(s, 10));
  if (uid === undefined || Number.isNaN(uid) || (gid !== undefined && Number.isNaN(gid))) throw new KataError("INVALID_ARGUMENT", `--user must be UID or UID:GID`);
  const volumes = values.volume.map((v): [string, string] => {
    const i = v.indexOf(":");
    if (i <= 0) throw new KataError("INVALID_ARGUMENT", `--volume must be HOST:CONTAINER, got ${v}`);
    return [v.slice(0, i), v.slice(i + 1)];
  });
  const int = (s: string | undefined, what: string): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number.parseInt(s, 10);
    if (!Number.isInteger(n) || n <= 0) throw new KataError("INVALID_ARGUMENT", `${what} must be a positive integer`);
    return n;
  };
  const memLimit = int(values["memory-limit"], "--memory-limit");
  const vmSize = { memoryMiB: int(values["vm-memory"], "--vm-memory") ?? 512, vcpus: int(values.cpus, "--cpus") ?? 1 };
  requireFitsHost(vmSize, await hostLimits(), { vcpus: "--cpus", memoryMiB: "--vm-memory" });

  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`kata-ts run: ${sig}, tearing the sandbox down\n`);
    abort.abort();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const tty = values.tty && process.stdin.isTTY === true;
  if (tty) process.stdin.setRawMode(true);
  try {
    return await runOnce({
      ...(values.bundle !== undefined ? { bundle: values.bundle } : {}),
      ...(values.rootfs !== undefined ? { rootfs: values.rootfs } : {}),
      spec: {
        args: positionals,
        env: values.env,
        ...(values.cwd !== undefined ? { cwd: values.cwd } : {}),
        uid,
        gid: gid ?? uid,
        volumes,
        ...(memLimit !== undefined ? { memoryLimitBytes: memLimit * 1024 * 1024 } : {}),
      },
      openStdin: values.interactive,
      terminal: values.tty,
      sandbox: {
        ...(values.id !== undefined ? { id: values.id } : {}),
        ...vmSize,
      },
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
      signal: abort.signal,
      onResizeHook: (resize) => {
        if (!process.stdout.isTTY) return;
        resize(process.stdout.rows, process.stdout.columns);
        process.stdout.on("resize", () => resize(process.stdout.rows, process.stdout.columns));
      },
    });
  } catch (err) {
    if (abort.signal.aborted && isKataError(err, "CANCELLED")) return 130;
    throw err;
  } finally {
    if (tty) process.stdin.setRawMode(false);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (!values.interactive) process.stdin.unref?.();
  }
}
