// Which of a container's paths the agent holds open so that their virtio-fs submounts outlive the
// container (share-pins.ts): its rootfs and bind sources on the share, nothing else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sharedPaths } from "../../src/agent/container/share-pins.js";

void test("share pins: the rootfs and the bind sources under the share; not tmpfs, proc or binds from elsewhere", () => {
  const share = "/run/kata-ts/shared";
  const spec = {
    ociVersion: "1.0.2",
    root: { path: `${share}/containers/c1/rootfs` },
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev/shm", type: "bind", source: `${share}/containers/c1/mounts/9-shm`, options: ["rbind"] },
      { destination: "/etc/hosts", source: `${share}/containers/c1/mounts/1-hosts`, options: ["rbind", "ro"] },
      { destination: "/cache", type: "bind", source: "/run/kata-ts/pod-tmpfs/cache", options: ["rbind"] },
      { destination: "/tmp", type: "tmpfs", source: "tmpfs" },
      { destination: "/sharedlike", type: "bind", source: `${share}-other/x`, options: ["bind"] },
    ],
  };
  assert.deepEqual(sharedPaths(spec, [share]), [`${share}/containers/c1/rootfs`, `${share}/containers/c1/mounts/9-shm`, `${share}/containers/c1/mounts/1-hosts`]);
  assert.deepEqual(sharedPaths({ ociVersion: "1.0.2" }, [share]), []);
});
