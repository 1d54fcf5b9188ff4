// Container root filesystems on Firecracker, which cannot hotplug drives: the VM boots with N
// placeholder drives (empty files in its state dir, read-only), and a container's image is
// attached by pointing a free one at it with PATCH /drives/{drive_id} (post-boot only, per the
// swagger document; it updates the backing file and tells the guest the new capacity). Detach
// points the drive back at its placeholder. Firecracker attaches block devices in the order they
// were configured, so the guest sees the root image as /dev/vda and slot i as the (i+2)th letter.
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KataError } from "../../util/errors.js";
import type { ApiClient } from "../rest/api-client.js";
import type { AttachedBlock, BlockAttach } from "../types.js";
import type { FcDrive, FcPartialDrive } from "./api-types.js";

/** At most this many slots: block devices, NICs and vsock all take one of the guest's virtio-mmio IRQs. */
export const maxDriveSlots = 16;

export const slotDriveId = (i: number): string => `ctr${i}`;

/** /dev/vda for the first drive configured (the root image), /dev/vdb for the next, ... */
export function guestBlockDevice(order: number): string {
  if (!Number.isInteger(order) || order < 0 || order > 25) throw new KataError("INVALID_ARGUMENT", `no /dev/vdX name for drive number ${order}`);
  return `/dev/vd${String.fromCharCode(97 + order)}`;
}

export class DriveSlots implements BlockAttach {
  /** slot index -> the image it points at (absent: its placeholder). */
  private readonly inUse = new Map<number, string>();

  constructor(
    readonly count: number,
    private readonly stateDir: string,
    /** The API once the VM runs; undefined before boot and after it ended. */
    private readonly api: () => ApiClient | undefined,
  ) {
    if (!Number.isInteger(count) || count < 0 || count > maxDriveSlots) {
      throw new KataError("INVALID_ARGUMENT", `block slots ${count}: firecracker VMs take 0 to ${maxDriveSlots} ([hypervisor.firecracker] block_slots)`);
    }
  }

  placeholderPath(i: number): string {
    return join(this.stateDir, `${slotDriveId(i)}.placeholder`);
  }

  /** Empty placeholder files (the state dir, and so they, go with the VM), then their PUT /drives bodies. */
  async placeholders(): Promise<FcDrive[]> {
    const drives: FcDrive[] = [];
    for (let i = 0; i < this.count; i++) {
      await writeFile(this.placeholderPath(i), "", { flag: "wx" });
      drives.push({ drive_id: slotDriveId(i), path_on_host: this.placeholderPath(i), is_root_device: false, is_read_only: true });
    }
    return drives;
  }

  async attach(imagePath: string): Promise<AttachedBlock> {
    const api = this.running("attach an image");
    const st = await stat(imagePath).catch((err: unknown) => {
      throw new KataError("NOT_FOUND", `block image ${imagePath} does not exist`, { cause: err });
    });
    const free = Array.from({ length: this.count }, (_, i) => i).find((i) => !this.inUse.has(i));
    if (free === undefined) {
      throw new KataError(
        "RESOURCE_EXHAUSTED",
        `all ${this.count} block slots of this firecracker VM are in use: a pod on firecracker runs at most ${this.count} containers at once ` +
          `(Firecracker cannot add drives to a running VM; raise [hypervisor.firecracker] block_slots, up to ${maxDriveSlots})`,
      );
    }
    this.inUse.set(free, imagePath);
    try {
      await this.patch(api, free, imagePath);
    } catch (err) {
      this.inUse.delete(free);
      throw err;
    }
    return { slot: slotDriveId(free), guestDevice: guestBlockDevice(free + 1), sizeBytes: st.size };
  }

  async detach(slot: string): Promise<void> {
    const i = Array.from({ length: this.count }, (_, n) => n).find((n) => slotDriveId(n) === slot);
    if (i === undefined) throw new KataError("INVALID_ARGUMENT", `no block slot ${slot} in this firecracker VM`);
    if (!this.inUse.has(i)) return;
    const api = this.api();
    // A VM that ended has no drives left to point anywhere: the slot is simply free.
    if (api !== undefined) await this.patch(api, i, this.placeholderPath(i));
    this.inUse.delete(i);
  }

  private running(what: string): ApiClient {
    const api = this.api();
    if (api === undefined) throw new KataError("FAILED_PRECONDITION", `cannot ${what}: the firecracker VM is not running`);
    return api;
  }

  private async patch(api: ApiClient, i: number, path: string): Promise<void> {
    const body: FcPartialDrive = { drive_id: slotDriveId(i), path_on_host: path };
    await api.call("PATCH", `/drives/${slotDriveId(i)}`, body);
  }
}
