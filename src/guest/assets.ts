// What the host side needs to boot a guest: paths and kernel parameters, from manifest.json.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../util/errors.js";
import { assetsDir } from "../util/paths.js";
import type { GuestKernelTraits } from "../hypervisor/types.js";
import type { GuestManifest } from "./manifest.js";

export interface GuestAssets {
  /** Uncompressed ELF vmlinux (PVH boot). */
  kernelPath: string;
  initrdPath?: string;
  /** The root image, attached read-only as rootfsDevice. */
  rootfsPath: string;
  rootfsFormat: "erofs" | "ext4";
  rootfsDevice: "virtio-blk" | "virtio-pmem";
  kernelRelease: string;
  /** Guest-side kernel parameters the image needs; the VMM adds console=... itself. */
  kernelCmdline: string[];
  /** What the VMM may rely on about the kernel (project builds); absent for other kernels and older manifests. */
  kernelTraits?: GuestKernelTraits;
  manifest: GuestManifest;
}

export async function loadGuestAssets(dir: string = assetsDir()): Promise<GuestAssets> {
  // Loaded on demand: the manifest's schema is zod, which a shim server handed its pod's assets
  // (src/shim/pod-config.ts) never loads.
  const { readManifest } = await import("./manifest.js");
  const manifest = await readManifest(dir);
  const path = async (file: string): Promise<string> => {
    const p = join(dir, file);
    await stat(p).catch((err: unknown) => {
      throw new KataError("NOT_FOUND", `guest asset ${p} is missing; run: kata-ts build-assets`, { cause: err });
    });
    return p;
  };
  const { kernel, initrd, rootfs } = manifest.artifacts;
  return {
    kernelPath: await path(kernel.file),
    ...(initrd === undefined ? {} : { initrdPath: await path(initrd.file) }),
    rootfsPath: await path(rootfs.file),
    rootfsFormat: manifest.rootfsFormat,
    rootfsDevice: manifest.rootfsDevice ?? "virtio-blk",
    kernelRelease: manifest.kernel.release,
    kernelCmdline: [...manifest.kernelCmdline],
    ...(manifest.kernel.traits === undefined ? {} : { kernelTraits: { ...manifest.kernel.traits, addedParams: [...manifest.kernel.traits.addedParams] } }),
    manifest,
  };
}
