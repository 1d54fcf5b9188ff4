// A VM variant of bench/vmm-variants.ts: "NAME:KEY=VALUE,..." with keys env (QEMU's environment,
// repeatable), mem (guest MiB), tb (TCG cache MiB), huge (1: guest RAM in huge pages,
// [hypervisor.qemu] huge_guest_ram) and assets (a guest assets dir), e.g.
// "jit40:tb=40,assets=/tmp/assets-jitless" or "arena1:env=MALLOC_ARENA_MAX=1".
import { defaultTcgTbSizeMiB } from "../../src/config/schema.js";
import { UsageError } from "./args.js";

export interface VmVariant {
  name: string;
  /** Set in the environment while the sandbox is created: QEMU and virtiofsd inherit it. */
  env: Record<string, string>;
  memoryMiB: number;
  tbSizeMiB: number;
  /** Guest RAM on the huge-page tmpfs ([hypervisor.qemu] huge_guest_ram). */
  hugeGuestRam: boolean;
  /** TCG's code buffer in a memfd (`split-wx=on`; on with [hypervisor.qemu] tcg_idle_trim_s). */
  tcgSplitWx?: boolean;
  assetsDir?: string;
}

const splitOnce = (text: string, sep: string): [string, string] => {
  const i = text.indexOf(sep);
  return i < 0 ? [text, ""] : [text.slice(0, i), text.slice(i + 1)];
};

function positiveInt(spec: string, key: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`variant ${JSON.stringify(spec)}: ${key} must be a whole number of MiB, got ${JSON.stringify(text)}`);
  return n;
}

export function parseVmVariant(spec: string): VmVariant {
  const [name, rest] = splitOnce(spec, ":");
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new UsageError(`variant ${JSON.stringify(spec)}: the name before ":" must be letters, digits, _ or -`);
  const v: VmVariant = { name, env: {}, memoryMiB: 512, tbSizeMiB: defaultTcgTbSizeMiB, hugeGuestRam: false };
  for (const item of rest.split(",").filter((x) => x !== "")) {
    const [key, value] = splitOnce(item, "=");
    if (key === "env") {
      const [envKey, envValue] = splitOnce(value, "=");
      if (envKey === "") throw new UsageError(`variant ${JSON.stringify(spec)}: env needs NAME=VALUE`);
      v.env[envKey] = envValue;
    } else if (key === "mem") v.memoryMiB = positiveInt(spec, key, value);
    else if (key === "tb") v.tbSizeMiB = positiveInt(spec, key, value);
    else if (key === "assets" && value !== "") v.assetsDir = value;
    else if (key === "huge" && (value === "0" || value === "1")) v.hugeGuestRam = value === "1";
    else if (key === "splitwx" && (value === "0" || value === "1")) v.tcgSplitWx = value === "1";
    else throw new UsageError(`variant ${JSON.stringify(spec)}: unknown or empty key ${JSON.stringify(key)} (known: env, mem, tb, huge, splitwx, assets)`);
  }
  return v;
}

/** Runs fn with the variant's environment set, then puts the environment back. */
export function withVariantEnv<T>(v: VmVariant, fn: () => Promise<T>): Promise<T> {
  return withEnv(v.env, fn);
}

/** Runs fn with env set in this process's environment (QEMU inherits it at spawn), then puts it back. */
export async function withEnv<T>(env: Record<string, string> | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = Object.keys(env ?? {}).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, old] of saved) {
      if (old === undefined) delete process.env[k];
      else process.env[k] = old;
    }
  }
}
