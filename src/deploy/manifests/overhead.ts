// The RuntimeClass's PodOverhead comes from a measurement, not a guess: bench/overhead.ts measures
// the host cost of an idle kata-ts pod (PSS and CPU of shim + QEMU + virtiofsd) and the figures
// live in overhead.json beside this file, the one place they are kept. The overhead declared to
// Kubernetes is the measured idle figure plus a stated margin, rounded up.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { KataError } from "../../util/errors.js";
import { packageRoot } from "../paths.js";

export const overheadDataSchema = z.strictObject({
  /** Proportional set size of shim + QEMU + virtiofsd for an idle pod, MiB. */
  measuredPssMiB: z.number().nonnegative(),
  /** Their CPU use for an idle pod, millicores (1000 = one core busy). */
  measuredCpuMillicores: z.number().nonnegative(),
  /** The same with a busy container (for reference: the container's own use is in its requests). */
  busyPssMiB: z.number().nonnegative(),
  busyCpuMillicores: z.number().nonnegative(),
  marginPercent: z.number().min(0).max(200),
  measuredAt: z.string(),
  command: z.string(),
});
export type OverheadData = z.output<typeof overheadDataSchema>;

export interface PodFixedOverhead {
  memory: string;
  cpu: string;
}

export function overheadDataPath(root = packageRoot()): string {
  return join(root, "src", "deploy", "manifests", "overhead.json");
}

export function loadOverheadData(path = overheadDataPath()): OverheadData {
  const parsed = overheadDataSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new KataError("INVALID_ARGUMENT", `${path}: ${parsed.error.message}; re-run bench/overhead.ts --write`);
  return parsed.data;
}

/** measured * (1 + margin), rounded up: MiB for memory, millicores for CPU. */
export function podFixedOverhead(d: OverheadData): PodFixedOverhead {
  const f = 1 + d.marginPercent / 100;
  return {
    memory: `${Math.ceil(d.measuredPssMiB * f)}Mi`,
    cpu: `${Math.max(1, Math.ceil(d.measuredCpuMillicores * f))}m`,
  };
}
