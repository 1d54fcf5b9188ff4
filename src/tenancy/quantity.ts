// Kubernetes resource quantities ("250m", "2", "160Mi", "1e3"), enough to add requests and
// overheads and compare them with quotas. Values are returned in base units (cores, bytes).

const SUFFIX: Record<string, number> = {
  "": 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/;

/** The value of a quantity in base units, or undefined if `s` is not a quantity. */
export function parseQuantity(s: string | number): number | undefined {
  if (typeof s === "number") return Number.isFinite(s) ? s : undefined;
  const m = QUANTITY.exec(s.trim());
  if (m === null) return undefined;
  const base = Number(m[1]);
  if (m[2] !== undefined) return base * 10 ** Number(m[2].slice(1));
  return base * (SUFFIX[m[3] ?? ""] ?? 1);
}

export function isQuantity(s: string | number): boolean {
  return parseQuantity(s) !== undefined;
}

/** CPU cores -> millicores, rounded as Kubernetes does (up, to 1m). */
export function toMilliCpu(s: string | number): number {
  return Math.ceil((parseQuantity(s) ?? NaN) * 1000 - 1e-9);
}

export function toBytes(s: string | number): number {
  return Math.ceil(parseQuantity(s) ?? NaN);
}

export function formatMilliCpu(m: number): string {
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}

export function formatBytes(b: number): string {
  for (const [suffix, f] of [["Gi", 2 ** 30], ["Mi", 2 ** 20], ["Ki", 2 ** 10]] as const) {
    if (b % f === 0 && b >= f) return `${b / f}${suffix}`;
  }
  return String(b);
}
