// Writes a single-layer OCI image as an OCI layout archive (what `ctr images import` reads),
// without a registry, Docker or umoci: the layer is a reproducible GNU tar of a staged rootfs
// (hard links kept, owners 0, mtimes 0), gzip'd; config, manifest and index are plain JSON
// addressed by their sha256.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
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

export async function writeOciArchive(spec: OciImageSpec, archivePath: string): Promise<OciArchive> {
  const work = await mkdtemp(join(dirname(archivePath), ".oci-"));
  try {
    const layout = join(work, "layout");
    await mkdir(layout);
    const layerTarPath = join(work, "layer.tar");
    await reproducibleTar(spec.rootfsDir, layerTarPath);
    const layerTar = await readFile(layerTarPath);
    // mtime 0 in the gzip header too (Node writes none), so the digest is reproducible.
    const layer = await putBlob(layout, gzipSync(layerTar, { level: 6 }));
    const config = await putBlob(
      layout,
      Buffer.from(
        JSON.stringify({
          created: "1970-01-01T00:00:00Z",
          architecture: "amd64",
          os: "linux",
          config: spec.config,
          rootfs: { type: "layers", diff_ids: [sha256(layerTar)] },
          history: [{ created: "1970-01-01T00:00:00Z", created_by: "kata-ts src/images" }],
        }),
      ),
    );
    const manifest = await putBlob(
      layout,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA_MANIFEST,
          config: { mediaType: MEDIA_CONFIG, ...config },
          layers: [{ mediaType: MEDIA_LAYER_GZIP, ...layer }],
        }),
      ),
    );
    const tag = spec.ref.slice(spec.ref.lastIndexOf(":") + 1);
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA_INDEX,
      manifests: [
        {
          mediaType: MEDIA_MANIFEST,
          ...manifest,
          platform: { architecture: "amd64", os: "linux" },
          annotations: { [ANNOTATION_CONTAINERD_NAME]: spec.ref, [ANNOTATION_REF_NAME]: tag },
        },
      ],
    };
    await writeFile(join(layout, "index.json"), JSON.stringify(index));
    await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await reproducibleTar(layout, archivePath);
    return { ref: spec.ref, archivePath, manifestDigest: manifest.digest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
