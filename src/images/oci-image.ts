// Writes an OCI image as an OCI layout archive, streaming each layer (tar -> sha256 of the tar ->
// gzip -> sha256 of the blob -> file), so an image of hundreds of MiB never sits in memory.
// Reproducible: GNU tar with owners 0 and mtimes 0, gzip without a timestamp, JSON addressed by
// its sha256 (the pieces are in ./oci-layout.ts).
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import {
  ANNOTATION_CONTAINERD_NAME,
  ANNOTATION_REF_NAME,
  MEDIA_CONFIG,
  MEDIA_INDEX,
  MEDIA_LAYER_GZIP,
  MEDIA_MANIFEST,
  putBlob,
  reproducibleTar,
  type Blob,
  type OciArchive,
  type OciImageSpec,
  type OciRuntimeConfig,
} from "./oci-layout.js";

export interface ImageLayer {
  /** A staged tree; its contents become the layer, relative to the image's /. */
  dir: string;
  /** The image history's created_by for this layer (what `ctr images history`-like tools show). */
  createdBy: string;
}

export interface LayeredImageSpec {
  ref: string;
  /** Bottom layer first. */
  layers: readonly ImageLayer[];
  config: OciRuntimeConfig & { Labels?: Record<string, string> };
  /** gzip level; 1 is several times faster than 6 and costs a few per cent in size. */
  gzipLevel?: number;
}

export interface LayeredArchive extends OciArchive {
  /** Archive size in bytes. */
  size: number;
  layers: Blob[];
}

const EPOCH = "1970-01-01T00:00:00Z";

function tap(hash: Hash, count: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      count.n += chunk.length;
      cb(null, chunk);
    },
  });
}

async function putLayer(layoutDir: string, work: string, dir: string, level: number): Promise<Blob & { diffId: string }> {
  const tarPath = join(work, "layer.tar");
  const blobPath = join(work, "layer.tar.gz");
  await reproducibleTar(dir, tarPath);
  const diff = createHash("sha256");
  const blob = createHash("sha256");
  const size = { n: 0 };
  await pipeline(createReadStream(tarPath), tap(diff, { n: 0 }), createGzip({ level }), tap(blob, size), createWriteStream(blobPath));
  await rm(tarPath);
  const hex = blob.digest("hex");
  const dest = join(layoutDir, "blobs", "sha256", hex);
  await mkdir(dirname(dest), { recursive: true });
  await rename(blobPath, dest);
  return { digest: `sha256:${hex}`, size: size.n, diffId: `sha256:${diff.digest("hex")}` };
}

export async function writeLayeredOciArchive(spec: LayeredImageSpec, archivePath: string): Promise<LayeredArchive> {
  const work = await mkdtemp(join(dirname(archivePath), ".oci-"));
  try {
    const layout = join(work, "layout");
    await mkdir(layout);
    const layers: Array<Blob & { diffId: string }> = [];
    for (const l of spec.layers) layers.push(await putLayer(layout, work, l.dir, spec.gzipLevel ?? 6));
    const config = await putBlob(
      layout,
      Buffer.from(
        JSON.stringify({
          created: EPOCH,
          architecture: "amd64",
          os: "linux",
          config: spec.config,
          rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
          history: spec.layers.map((l) => ({ created: EPOCH, created_by: l.createdBy })),
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
          layers: layers.map((l) => ({ mediaType: MEDIA_LAYER_GZIP, digest: l.digest, size: l.size })),
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
    return {
      ref: spec.ref,
      archivePath,
      manifestDigest: manifest.digest,
      size: (await stat(archivePath)).size,
      layers: layers.map((l) => ({ digest: l.digest, size: l.size })),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A one-layer image of a staged rootfs (the test images). */
export function writeOciArchive(spec: OciImageSpec, archivePath: string): Promise<LayeredArchive> {
  return writeLayeredOciArchive({ ref: spec.ref, layers: [{ dir: spec.rootfsDir, createdBy: "kata-ts src/images" }], config: spec.config }, archivePath);
}
