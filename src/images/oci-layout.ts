// The pieces of an OCI layout archive (what `ctr images import` reads), without a registry,
// Docker or umoci: media types, content-addressed blobs, and the reproducible GNU tar (hard links
// kept, owners 0, mtimes 0) used for layers and for the archive itself. ./oci-image.ts puts them
// together.
import { createHash } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { run } from "../util/exec.js";

export const MEDIA_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json";
export const MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
/** containerd's annotation for the image name to create on import. */
export const ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name";
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";

/** The runtime part of an OCI image config (field names as in the image spec). */
export interface OciRuntimeConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
}

export interface OciImageSpec {
  /** Full reference, e.g. localhost/kata-ts/busybox:1. */
  ref: string;
  rootfsDir: string;
  config: OciRuntimeConfig;
}

export interface OciArchive {
  ref: string;
  archivePath: string;
  manifestDigest: string;
}

export interface Blob {
  digest: string;
  size: number;
}

const sha256 = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export async function putBlob(layoutDir: string, data: Buffer): Promise<Blob> {
  const digest = sha256(data);
  const path = join(layoutDir, "blobs", "sha256", digest.slice("sha256:".length));
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, data);
  return { digest, size: data.length };
}

/** A tar of `dir`'s contents in a reproducible form (same bytes for the same tree). */
export async function reproducibleTar(dir: string, outPath: string): Promise<void> {
  const entries = (await readdir(dir)).sort();
  await run(
    "tar",
    ["--sort=name", "--format=gnu", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@0", "-C", dir, "-cf", outPath, "--", ...entries],
    { timeoutMs: 120_000 },
  );
}
