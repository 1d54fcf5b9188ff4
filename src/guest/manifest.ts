// manifest.json: what `kata-ts build-assets` produced, from which inputs. It is written last, so
// its presence means the artifacts beside it are complete; the `inputs` key decides staleness.
import { readFile, stat, writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { KataError } from "../util/errors.js";
import { sha256File } from "./fsutil.js";

export const MANIFEST_FILE = "manifest.json";
export const MANIFEST_SCHEMA_VERSION = 1;

const artifactSchema = z.strictObject({
  file: z.string().min(1),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const manifestSchema = z.strictObject({
  schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
  /** sha256 over every input that changes the artifacts (see build.ts: inputsKey). */
  inputsKey: z.string().regex(/^[0-9a-f]{64}$/),
  /**
   * configSha256: the merged configuration fragments of a kernel the project built; patchesSha256:
   * its patches; traits: what the host may rely on when it adds kernel parameters (absent: nothing).
   */
  kernel: z.strictObject({
    source: z.string(),
    package: z.string(),
    version: z.string(),
    release: z.string(),
    configSha256: z.string().optional(),
    patchesSha256: z.string().optional(),
    traits: z.strictObject({ hz: z.number().int().positive(), addedParams: z.array(z.string()), bootsWithoutAcpi: z.boolean() }).optional(),
  }),
  /** Versions of what went into the rootfs and initramfs. */
  components: z.record(z.string(), z.string()),
  modules: z.array(z.string()),
  rootfsFormat: z.enum(["erofs", "ext4"]),
  /** How the VMM attaches the root image; absent (older manifests) means virtio-blk. */
  rootfsDevice: z.enum(["virtio-blk", "virtio-pmem"]).optional(),
  kernelCmdline: z.array(z.string()),
  /** Where the agent is in the image; snapshot is set when the image carries a V8 startup snapshot. */
  agent: z.strictObject({ path: z.string(), snapshot: z.string().optional(), nodeArgs: z.array(z.string()) }),
  artifacts: z.strictObject({ kernel: artifactSchema, initrd: artifactSchema.optional(), rootfs: artifactSchema }),
});

export type GuestManifest = z.infer<typeof manifestSchema>;
export type ArtifactInfo = z.infer<typeof artifactSchema>;

export async function describeArtifact(dir: string, file: string): Promise<ArtifactInfo> {
  const path = join(dir, file);
  return { file, size: (await stat(path)).size, sha256: await sha256File(path) };
}

export async function writeManifest(dir: string, manifest: GuestManifest): Promise<void> {
  const tmp = join(dir, `${MANIFEST_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(manifestSchema.parse(manifest), null, 2) + "\n");
  await rename(tmp, join(dir, MANIFEST_FILE));
}

export async function readManifest(dir: string): Promise<GuestManifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new KataError("NOT_FOUND", `guest assets manifest ${path} is missing; run: kata-ts build-assets`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new KataError("FAILED_PRECONDITION", `guest assets manifest ${path} is not valid JSON; run: kata-ts build-assets`, { cause: err });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new KataError("FAILED_PRECONDITION", `guest assets manifest ${path} is not in the expected format (${parsed.error.issues[0]?.message ?? "invalid"}); run: kata-ts build-assets`);
  }
  return parsed.data;
}
