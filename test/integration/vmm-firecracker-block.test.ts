// Container root filesystems on Firecracker (no virtio-fs): the VM boots with placeholder drives,
// a container's rootfs becomes an erofs image that PATCH /drives/{id} points a free one at, and
// the agent mounts it (with a tmpfs overlay) as the container's root. The stand-in firecracker
// enforces the API contract (PATCH post-boot only and for a drive configured before boot; PUT
// /drives pre-boot only), and in the last test it runs the real guest under QEMU with the drives
// as virtio-blk devices, so a container really starts from its block image.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import { chmod, chown, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import type { OciMount } from "../../src/protocol/contract/oci.js";
import { GUEST_FILES_LIMIT_BYTES } from "../../src/protocol/contract/guest.js";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Firecracker } from "../../src/hypervisor/firecracker/index.js";
import { ApiClient } from "../../src/hypervisor/rest/api-client.js";
import { fcFailure } from "../../src/hypervisor/firecracker/index.js";
import { bootVm } from "../../src/sandbox/agent-boot.js";
import { Sandbox } from "../../src/sandbox/sandbox.js";
import { runSpec } from "../../src/sandbox/default-spec.js";
import { loadGuestAssets } from "../../src/guest/assets.js";
import { NoSharedFsError } from "../../src/hypervisor/no-shared-fs.js";
import { isKataError } from "../../src/util/errors.js";
import { makeBusyboxRootfs } from "./agent-container-fixture.js";
import { standinSuite, standinVmConfig } from "./vmm-standin-support.js";
import { exists, processesMentioning } from "./vm-support.js";

const suite = standinSuite("firecracker", "Firecracker API");

void test("firecracker stand-in: PATCH /drives is refused before boot and for a drive not configured before boot; PUT /drives is refused after boot", async () => {
  const s = await suite.standin("contract");
  const sock = join(suite.root, "contract.sock");
  const proc = spawn(s.binary, ["--api-sock", sock, "--id", "contract"], { stdio: "ignore" });
  try {
    const api = new ApiClient(sock, "firecracker", fcFailure);
    for (let i = 0; i < 100 && !(await exists(sock)); i++) await sleep(50);
    const refused = async (method: "PUT" | "PATCH", path: string, body: unknown, why: RegExp): Promise<void> => {
      await assert.rejects(api.call(method, path, body), (e) => isKataError(e, "INVALID_ARGUMENT") && why.test(e.message), `${method} ${path}`);
    };
    await refused("PATCH", "/drives/ctr0", { drive_id: "ctr0", path_on_host: suite.files.rootfs }, /not supported before starting the microVM/);
    await api.call("PUT", "/boot-source", { kernel_image_path: suite.files.kernel, boot_args: "console=ttyS0" });
    await api.call("PUT", "/drives/rootfs", { drive_id: "rootfs", path_on_host: suite.files.rootfs, is_root_device: false, is_read_only: true });
    const placeholder = join(suite.root, "ctr0.placeholder");
    await writeFile(placeholder, "");
    await api.call("PUT", "/drives/ctr0", { drive_id: "ctr0", path_on_host: placeholder, is_root_device: false, is_read_only: true });
    await api.call("PUT", "/actions", { action_type: "InstanceStart" });
    await refused("PUT", "/drives/ctr1", { drive_id: "ctr1", path_on_host: placeholder, is_root_device: false, is_read_only: true }, /not supported after starting the microVM/);
    await refused("PATCH", "/drives/ctr9", { drive_id: "ctr9", path_on_host: suite.files.rootfs }, /no drive with id ctr9/);
    await refused("PATCH", "/drives/ctr0", { drive_id: "ctr0", path_on_host: join(suite.root, "missing.erofs") }, /cannot open .*missing\.erofs/);
    await api.call("PATCH", "/drives/ctr0", { drive_id: "ctr0", path_on_host: suite.files.rootfs });
  } finally {
    proc.kill("SIGKILL");
  }
  assert.deepEqual(await s.violations(), [], "every request was valid by the swagger schemas");
});

void test("firecracker: block slots are placeholder drives configured before boot; attach PATCHes a free one at the image, detach back; all in use is RESOURCE_EXHAUSTED; placeholders go with the VM", async () => {
  const s = await suite.standin("slots");
  const hv = await Firecracker.open({ binary: s.binary, blockSlots: 2 });
  assert.deepEqual(hv.capabilities().blockRootfs, { kind: "placeholder-drives", slots: 2 });
  assert.equal(hv.capabilities().sharedFs, undefined);
  const config = standinVmConfig(suite.files, suite.root, "slots", { blockSlots: 2 });
  const { vm, agent } = await bootVm(config, { deadlineMs: 10_000, hypervisor: hv });
  agent.close();
  const blocks = vm.blocks;
  assert.ok(blocks !== undefined);
  const imgA = join(suite.root, "a.erofs");
  const imgB = join(suite.root, "b.erofs");
  await writeFile(imgA, Buffer.alloc(8192));
  await writeFile(imgB, Buffer.alloc(4096));
  const a = await blocks.attach(imgA);
  const b = await blocks.attach(imgB);
  assert.deepEqual(a, { slot: "ctr0", guestDevice: "/dev/vdb", sizeBytes: 8192 });
  assert.deepEqual(b, { slot: "ctr1", guestDevice: "/dev/vdc", sizeBytes: 4096 });
  await assert.rejects(blocks.attach(imgA), (e) => isKataError(e, "RESOURCE_EXHAUSTED") && /all 2 block slots .* in use.*block_slots/.test(e.message));
  await blocks.detach(a.slot);
  await blocks.detach(a.slot); // idempotent: no second request
  assert.equal((await blocks.attach(imgB)).slot, "ctr0", "a freed slot is reused");
  await assert.rejects(blocks.attach(join(suite.root, "nope.erofs")), (e) => isKataError(e, "NOT_FOUND"));
  await vm.stop();
  assert.equal(await exists(config.stateDir), false, "the state dir, and the placeholder files in it, are gone");
  const reqs = (await s.entries()).flatMap((e) => (e.request?.path.startsWith("/drives/") === true ? [e.request] : []));
  const placeholder = (i: number): string => join(config.stateDir, `ctr${i}.placeholder`);
  assert.deepEqual(reqs, [
    { method: "PUT", path: "/drives/rootfs", body: { drive_id: "rootfs", path_on_host: suite.files.rootfs, is_root_device: false, is_read_only: true } },
    { method: "PUT", path: "/drives/ctr0", body: { drive_id: "ctr0", path_on_host: placeholder(0), is_root_device: false, is_read_only: true } },
    { method: "PUT", path: "/drives/ctr1", body: { drive_id: "ctr1", path_on_host: placeholder(1), is_root_device: false, is_read_only: true } },
    { method: "PATCH", path: "/drives/ctr0", body: { drive_id: "ctr0", path_on_host: imgA } },
    { method: "PATCH", path: "/drives/ctr1", body: { drive_id: "ctr1", path_on_host: imgB } },
    { method: "PATCH", path: "/drives/ctr0", body: { drive_id: "ctr0", path_on_host: placeholder(0) } },
    { method: "PATCH", path: "/drives/ctr0", body: { drive_id: "ctr0", path_on_host: imgB } },
  ]);
  await assert.rejects(blocks.attach(imgA), (e) => isKataError(e, "FAILED_PRECONDITION") && /not running/.test(e.message));
});

// ---- the real guest: containers start from their block images ----


async function runIn(sb: Sandbox, id: string, rootfs: string, script: string, binds: OciMount[] = []): Promise<{ status: number; out: string }> {
  const spec = runSpec({ args: ["sh", "-c", script] });
  // The binds replace same-destination mounts (the CRI plugin's /dev/shm replaces the default tmpfs).
  spec.mounts = [...(spec.mounts ?? []).filter((m) => !binds.some((b) => b.destination === m.destination)), ...binds];
  const ctr = await sb.createContainer({ id, spec, rootfs });
  try {
    const p = await ctr.start();
    const out = new PassThrough();
    const parts: Buffer[] = [];
    out.on("data", (b: Buffer) => parts.push(b));
    const pump = p.pumpOutput("stdout", out);
    const exit = await p.wait(AbortSignal.timeout(120_000));
    await pump;
    return { status: exit.status, out: Buffer.concat(parts).toString() };
  } finally {
    await ctr.delete();
  }
}

void test("firecracker (stand-in running the real guest): containers start from block images of their rootfs, write to an overlay, get small bind-mounted files copied in and /dev/shm as the pod's guest tmpfs, are refused other bind mounts by name; images, slots and placeholders are cleaned up", { timeout: 600_000 }, async () => {
  const realRoot = suite.root;
  process.env.KATA_TS_STATE_DIR = join(realRoot, "state");
  process.env.KATA_TS_IMAGES_DIR = join(realRoot, "images");
  after(() => {
    delete process.env.KATA_TS_STATE_DIR;
    delete process.env.KATA_TS_IMAGES_DIR;
  });
  const assets = await loadGuestAssets();
  const s = await suite.standin("realguest", "none", "qemu");
  const hv = await Firecracker.open({ binary: s.binary, blockSlots: 2 });
  const rootfsA = join(realRoot, "rootfs-a");
  const rootfsB = join(realRoot, "rootfs-b");
  await makeBusyboxRootfs(rootfsA);
  await makeBusyboxRootfs(rootfsB);
  await writeFile(join(rootfsA, "etc/marker"), "image a\n");
  await writeFile(join(rootfsB, "etc/marker"), "image b\n");
  const imagesDir = join(realRoot, "images", "fcblk");
  const sb = await Sandbox.create({ id: "fcblk", hypervisor: hv, assets, memoryMiB: 512, bootTimeoutMs: 300_000, bootStallMs: 0 });
  try {
    assert.equal(sb.vm?.blocks !== undefined, true);
    const running = await Promise.all((await processesMentioning(realRoot)).map((pid) => readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")));
    assert.equal(running.some((c) => c.includes("virtiofsd")), false, "no virtiofsd for a pod whose container root filesystems are block images");
    assert.equal(await exists(join(realRoot, "state", "fcblk", "shared")), false, "and no share dir");
    // What the CRI plugin binds into every container: small files (copied in) and the sandbox's /dev/shm (a guest tmpfs).
    const hosts = join(realRoot, "hosts");
    await writeFile(hosts, "127.0.0.1 localhost\n10.0.0.9 web\n");
    await chown(hosts, 1234, 5678);
    await chmod(hosts, 0o640);
    const roFile = join(realRoot, "ro-file");
    await writeFile(roFile, "read only\n");
    const binds: OciMount[] = [
      { destination: "/etc/hosts", type: "bind", source: hosts, options: ["rbind", "rprivate", "rw"] },
      { destination: "/etc/ro-file", type: "bind", source: roFile, options: ["rbind", "rprivate", "ro"] },
      { destination: "/dev/shm", type: "bind", source: join(realRoot, "no-such-shm"), options: ["rbind", "rprivate", "rw"] },
    ];
    const a = await runIn(
      sb,
      "ca",
      rootfsA,
      [
        "cat /etc/marker; echo written > /new; cat /new; grep ' / ' /proc/mounts | cut -d' ' -f3",
        "cat /etc/hosts; stat -c '%a %u:%g' /etc/hosts; echo appended >> /etc/hosts && tail -n1 /etc/hosts",
        "cat /etc/ro-file; (echo x > /etc/ro-file) 2>/dev/null && echo WROTE || echo ro-refused",
        "grep ' /dev/shm ' /proc/mounts | cut -d' ' -f3; echo shared > /dev/shm/x",
      ].join("; "),
      binds,
    );
    assert.deepEqual(
      a,
      { status: 0, out: "image a\nwritten\noverlay\n127.0.0.1 localhost\n10.0.0.9 web\n640 1234:5678\nappended\nread only\nro-refused\ntmpfs\n" },
      "the container read its image, wrote to its overlay, saw the copied files with their mode and owner (the read-only one unwritable) and a tmpfs /dev/shm",
    );
    assert.equal(await readFile(hosts, "utf8"), "127.0.0.1 localhost\n10.0.0.9 web\n", "a copy: the container's write stays in the guest");
    assert.deepEqual(await readdir(imagesDir), [], "the image went with the container");
    // The slot freed by ca is pointed at b's image: the guest reads b's files, not a's cached ones.
    // /dev/shm is the pod's: b sees what a left there.
    const b = await runIn(sb, "cb", rootfsB, "cat /etc/marker; test -e /new || echo fresh; cat /dev/shm/x", binds.slice(2));
    assert.deepEqual(b, { status: 0, out: "image b\nfresh\nshared\n" });

    const refused = async (id: string, source: string, destination: string, why: RegExp): Promise<void> => {
      const spec = runSpec({ args: ["true"] });
      spec.mounts = [...(spec.mounts ?? []), { destination, type: "bind", source, options: ["rbind", "rw"] }];
      await assert.rejects(
        sb.createContainer({ id, spec, rootfs: rootfsA }),
        (e) => e instanceof NoSharedFsError && isKataError(e, "FAILED_PRECONDITION") && e.message.includes(`bind mount of ${source} at ${destination}`) && why.test(e.message),
        destination,
      );
    };
    const volume = join(realRoot, "volume");
    await mkdir(volume);
    await refused("cv", volume, "/data", /a directory.*no virtio-fs/);
    const big = join(realRoot, "big");
    await writeFile(big, Buffer.alloc(GUEST_FILES_LIMIT_BYTES + 1));
    await refused("cbig", big, "/etc/big", new RegExp(`up to ${GUEST_FILES_LIMIT_BYTES} bytes.*${GUEST_FILES_LIMIT_BYTES + 1} bytes.*over that limit`));
    assert.deepEqual(await readdir(imagesDir), [], "no image for a refused container");
    const patches = (await s.entries()).flatMap((e) => (e.request?.method === "PATCH" ? [`${e.request.path} ${String((e.request.body as { path_on_host: string }).path_on_host).split("/").pop()}`] : []));
    assert.deepEqual(patches, ["/drives/ctr0 ca.erofs", "/drives/ctr0 ctr0.placeholder", "/drives/ctr0 cb.erofs", "/drives/ctr0 ctr0.placeholder"]);
  } finally {
    await sb.destroy();
  }
  assert.equal(await exists(imagesDir), false, "the sandbox's images dir is gone");
  assert.deepEqual(await readdir(join(realRoot, "state")).catch(() => []), [], "no sandbox state (and so no placeholder) is left");
  assert.deepEqual(await processesMentioning(realRoot), [], "no firecracker stand-in or QEMU left");
});
