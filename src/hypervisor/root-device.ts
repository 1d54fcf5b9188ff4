// The guest kernel's root parameters for the device a driver attaches the root image as. The
// assets' parameters name one device (root=/dev/vda today); a driver that attaches the image
// otherwise rewrites them, so the configured device and the kernel command line cannot disagree.
export type RootImageDevice = "virtio-blk" | "virtio-pmem";

const blkRoot = "root=/dev/vda";
const pmemRoot = "root=/dev/pmem0";
/**
 * On virtio-pmem: dax=always makes the mount fail rather than silently copy the image into the guest's
 * page cache; rootwait because the nvdimm bus probes its region asynchronously, after the kernel first
 * looks for its root ("Cannot open root device pmem0" without it, seen on q35).
 */
const pmemOnly = ["rootflags=dax=always", "rootwait"];

/**
 * `params` with the root device (root=, and what a pmem root needs) made `device`'s, in place; other
 * parameters untouched. Parameters without a root= of either device are returned as they are.
 */
export function rootParamsFor(device: RootImageDevice, params: readonly string[]): string[] {
  if (!params.some((p) => p === blkRoot || p === pmemRoot)) return [...params];
  return params.flatMap((p) => {
    if (pmemOnly.includes(p)) return [];
    if (p === blkRoot || p === pmemRoot) return device === "virtio-pmem" ? [pmemRoot, ...pmemOnly] : [blkRoot];
    return [p];
  });
}
