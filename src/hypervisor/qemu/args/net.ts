// virtio-net NICs on existing tap devices. QEMU does not run scripts (script=no) and does not use
// vhost-net (absent on this host; the generic path works everywhere).
import { KataError } from "../../../util/errors.js";
import { virtioDevice, type VirtioTransport } from "./machine.js";
import { qemuOpts } from "./opts.js";

export interface NetOptions {
  tapName: string;
  mac: string;
}

const macPattern = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function renderNet(devices: readonly NetOptions[], transport: VirtioTransport): string[] {
  return devices.flatMap((dev, i) => {
    if (!macPattern.test(dev.mac)) throw new KataError("INVALID_ARGUMENT", `NIC ${dev.tapName}: MAC ${JSON.stringify(dev.mac)} is not 6 hex octets`);
    const id = `net${i}`;
    return [
      "-netdev",
      qemuOpts("tap", { id, ifname: dev.tapName, script: "no", downscript: "no", vhost: false }),
      "-device",
      qemuOpts(virtioDevice("virtio-net", transport), { netdev: id, mac: dev.mac }),
    ];
  });
}
