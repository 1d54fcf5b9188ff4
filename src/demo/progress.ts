// Progress for slow steps: a line when a step starts, the elapsed time while it runs (in place on
// a terminal, a line every 10 s otherwise), and how long it took.
export interface Progress {
  step<T>(label: string, fn: () => Promise<T>): Promise<T>;
  info(line: string): void;
}

export function progress(out: NodeJS.WriteStream = process.stderr): Progress {
  const tty = out.isTTY === true;
  return {
    info: (line) => out.write(`${line}\n`),
    async step<T>(label: string, fn: () => Promise<T>): Promise<T> {
      const t0 = Date.now();
      const secs = () => ((Date.now() - t0) / 1000).toFixed(0);
      out.write(tty ? `==> ${label} ...` : `==> ${label} ...\n`);
      const timer = setInterval(
        () => out.write(tty ? `\r==> ${label} ... ${secs()} s` : `    ... ${label}: ${secs()} s\n`),
        tty ? 1_000 : 10_000,
      );
      timer.unref();
      try {
        const v = await fn();
        out.write(`${tty ? `\r==> ${label} ... ` : "    "}done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
        return v;
      } catch (err) {
        out.write(`${tty ? "\n" : ""}    ${label}: failed after ${secs()} s\n`);
        throw err;
      } finally {
        clearInterval(timer);
      }
    },
  };
}
