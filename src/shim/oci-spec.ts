// Reading the OCI spec containerd wrote into the bundle.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import type { OciSpec } from "./pod-port.js";

export async function readSpec(bundle: string): Promise<OciSpec> {
  const file = join(bundle, "config.json");
  let spec: unknown;
  try {
    spec = JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new KataError("INVALID_ARGUMENT", `cannot read the OCI spec ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof spec !== "object" || spec === null) throw new KataError("INVALID_ARGUMENT", `${file} is not a JSON object`);
  const ann = (spec as { annotations?: unknown }).annotations;
  if (ann !== undefined && ann !== null && typeof ann !== "object") {
    throw new KataError("INVALID_ARGUMENT", `${file}: annotations is not an object`);
  }
  return spec as OciSpec;
}
