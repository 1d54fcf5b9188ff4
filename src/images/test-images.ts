// The two local images tests and the demo use (no registry here): `pause` for pod sandboxes and
// `busybox` for workloads (with iptables added, for packet-filter tests). Built once into a cache dir keyed by the busybox binary and the
// builder's version, so a rebuild happens only when either changes.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathExists } from "../util/fs.js";
import { cacheDir } from "../util/paths.js";
import { addIptables, HOST_BUSYBOX, PAUSE_COMMAND, stageBusyboxRootfs, stagePauseRootfs } from "./busybox-rootfs.js";
import { writeOciArchive } from "./oci-image.js";
import type { OciArchive } from "./oci-layout.js";

/** Bump when the staged trees or the archive format change: invalidates caches. */
const BUILDER_VERSION = "2";
export const PAUSE_IMAGE_REF = "localhost/kata-ts/pause:1";
export const BUSYBOX_IMAGE_REF = "localhost/kata-ts/busybox:1";
const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface TestImages {
  pause: OciArchive;
  busybox: OciArchive;
}

export function imagesCacheDir(): string {
  return join(cacheDir(), "images");
}

/** Build (or reuse from the cache) the pause and busybox OCI archives. */
export async function ensureTestImages(dir = imagesCacheDir(), busybox = HOST_BUSYBOX): Promise<TestImages> {
  const key = createHash("sha256").update(BUILDER_VERSION).update(await readFile(busybox)).digest("hex").slice(0, 16);
  const outDir = join(dir, key);
  const metaPath = join(outDir, "images.json");
  if (await pathExists(metaPath)) return JSON.parse(await readFile(metaPath, "utf8")) as TestImages;

  await mkdir(dir, { recursive: true });
  // Build in a scratch dir and rename into place, so a concurrent or interrupted build never
  // leaves a half-written cache entry.
  const work = await mkdtemp(join(dir, ".build-"));
  try {
    const pauseRoot = join(work, "pause-rootfs");
    const busyboxRoot = join(work, "busybox-rootfs");
    await stagePauseRootfs(pauseRoot, busybox);
    await stageBusyboxRootfs(busyboxRoot, busybox);
    await addIptables(busyboxRoot);
    const pause = await writeOciArchive(
      { ref: PAUSE_IMAGE_REF, rootfsDir: pauseRoot, config: { Entrypoint: PAUSE_COMMAND, Env: [PATH_ENV], WorkingDir: "/", StopSignal: "SIGTERM" } },
      join(work, "pause.tar"),
    );
    const bb = await writeOciArchive(
      { ref: BUSYBOX_IMAGE_REF, rootfsDir: busyboxRoot, config: { Cmd: ["sh"], Env: [PATH_ENV], WorkingDir: "/" } },
      join(work, "busybox.tar"),
    );
    await rm(pauseRoot, { recursive: true, force: true });
    await rm(busyboxRoot, { recursive: true, force: true });
    const images: TestImages = {
      pause: { ...pause, archivePath: join(outDir, "pause.tar") },
      busybox: { ...bb, archivePath: join(outDir, "busybox.tar") },
    };
    await writeFile(join(work, "images.json"), `${JSON.stringify(images, null, 2)}\n`);
    await rename(work, outDir).catch(async (err: NodeJS.ErrnoException) => {
      // Another build won the race: its result is as good as ours.
      if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
    });
    return images;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
