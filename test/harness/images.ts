// Puts the locally built test images into a private containerd's k8s.io namespace, where the CRI
// plugin finds them by reference (the CRI client never pulls).
import { ensureTestImages, type TestImages } from "../../src/images/test-images.js";
import type { PrivateContainerd } from "./containerd.js";

export { BUSYBOX_IMAGE_REF, PAUSE_IMAGE_REF } from "../../src/images/test-images.js";

export async function importTestImages(ctd: PrivateContainerd): Promise<TestImages> {
  const images = await ensureTestImages();
  for (const img of [images.pause, images.busybox]) {
    // Unpacked into the overlayfs snapshotter at import time, so the first container starts fast.
    await ctd.ctr(["images", "import", "--snapshotter", "overlayfs", img.archivePath], { timeoutMs: 120_000 });
  }
  return images;
}
