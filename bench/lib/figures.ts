// Shared by the benches: medians and the `--json` contract (the last line of output is one JSON
// object {"figures": {...}}).

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** "median M  min A  max B", integers as they are, others with two decimals. */
export function describeSpread(xs: readonly number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  return `median ${f(median(s))}  min ${f(s[0] ?? NaN)}  max ${f(s[s.length - 1] ?? NaN)}`;
}

/** The `--json` line: figures rounded to 0.1, NaN (not measured) as null. */
export function figuresLine(figures: Record<string, number>): string {
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(figures)) out[k] = Number.isFinite(v) ? Math.round(v * 10) / 10 : null;
  return JSON.stringify({ figures: out });
}
