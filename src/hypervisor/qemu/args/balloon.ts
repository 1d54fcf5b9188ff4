// virtio-balloon with free page reporting: the guest tells QEMU which pages it has freed, and QEMU
// discards them (MADV_DONTNEED), so memory a guest used once (boot, a finished build step) goes
// back to the host instead of staying resident in the VMM for the life of the pod. No deflate on
// OOM is needed: the balloon is never inflated, only free pages are reported.
import { virtioDevice, type VirtioTransport } from "./machine.js";
import { qemuOpts } from "./opts.js";

export function renderBalloon(transport: VirtioTransport): string[] {
  return ["-device", qemuOpts(virtioDevice("virtio-balloon", transport), { id: "balloon0", "free-page-reporting": true })];
}
