// A throwaway containerd 1.6 for trying kata-ts on one machine (`kata-ts demo`): config, root,
// state and sockets in a temp dir, run inside a network namespace it creates (pods get a bridge
// network there, the host's network is untouched), the kata-ts handler registered by the node
// installer's own code (src/deploy/containerd-install.ts), the local pause/busybox images imported.
// stop() removes pods through CRI, stops containerd, and removes everything it made.
//
// NOTE: test/harness/containerd.ts is the fuller version of this for tests (leak checks, stale
// sweeps). It was being changed when this was written, so this is a thin product-side sibling on
// top of src/deploy + src/cri + src/images; the two could share this core once the harness settles.
import { poolPaths } from "../pool/layout.js";
import { stopPool } from "../pool/stop.js";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "smol-toml";
import { installContainerdHandler } from "../deploy/containerd-install.js";
import { packagedShimPath } from "../deploy/paths.js";
import { ensureTestImages, PAUSE_IMAGE_REF } from "../images/test-images.js";
import { containerdEnv } from "../util/containerd-env.js";
import { run, tryRun } from "../util/exec.js";
import { killProcessesMentioning, unmountUnder } from "./cleanup.js";
import { removeAllPods, waitContainerdReady } from "./containerd-control.js";

const CRI = "io.containerd.grpc.v1.cri";
const CNI_RESULTS = "/var/lib/cni/results";

export interface DevContainerd {
  baseDir: string;
  address: string;
  netns: string;
  configPath: string;
  logPath: string;
  stop(): Promise<void>;
}

function config(baseDir: string, address: string): string {
  return `${stringify({
    version: 2,
    root: join(baseDir, "root"),
    state: join(baseDir, "state"),
    grpc: { address },
    ttrpc: { address: `${address}.ttrpc` },
    disabled_plugins: ["btrfs", "zfs", "aufs", "devmapper"].map((s) => `io.containerd.snapshotter.v1.${s}`),
    plugins: {
      "io.containerd.internal.v1.opt": { path: join(baseDir, "opt") },
      [CRI]: {
        sandbox_image: PAUSE_IMAGE_REF,
        // Root in some containers lacks CAP_SYS_RESOURCE: runc could not set oom_score_adj -998.
        restrict_oom_score_adj: true,
        netns_mounts_under_state_dir: true,
        stream_server_address: "127.0.0.1",
        stream_server_port: "0",
        cni: { bin_dir: "/usr/lib/cni", conf_dir: join(baseDir, "cni"), max_conf_num: 1 },
        containerd: {
          snapshotter: "overlayfs",
          default_runtime_name: "runc",
          runtimes: { runc: { runtime_type: "io.containerd.runc.v2", options: { BinaryName: "/usr/sbin/runc" } } },
        },
      },
    },
  })}\n`;
}

function bridge(name: string): string {
  const ipam = { type: "host-local", ranges: [[{ subnet: "10.244.88.0/24" }]], routes: [{ dst: "0.0.0.0/0" }] };
  return `${JSON.stringify({ cniVersion: "1.0.0", name, plugins: [{ type: "bridge", bridge: "ktsd0", isGateway: true, ipam }] }, null, 2)}\n`;
}

export async function startDevContainerd(): Promise<DevContainerd> {
  const baseDir = await mkdtemp(join(tmpdir(), "ktsd-")); // short: socket paths stay under 108 bytes
  const name = `ktsd-${randomBytes(4).toString("hex")}`;
  const address = join(baseDir, "containerd.sock");
  const configPath = join(baseDir, "config.toml");
  const logPath = join(baseDir, "containerd.log");
  const netns = `/var/run/netns/${name}`;
  let child: ChildProcess | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child && child.exitCode === null && child.signalCode === null) {
      await removeAllPods(address);
      // The pool daemon the kata-ts pod's shim started (the pool is on by default): its pooled VMs go with it.
      await stopPool(poolPaths(join(baseDir, "kata-ts", "kata-ts-pool")), 60_000).catch(() => undefined);
      const exited = new Promise((r) => child?.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    }
    await killProcessesMentioning(baseDir); // shims, QEMU, virtiofsd a broken pod left behind
    await unmountUnder(baseDir);
    for (const f of await readdir(CNI_RESULTS).catch(() => [] as string[])) {
      if (f.startsWith(`${name}-`)) await rm(join(CNI_RESULTS, f), { force: true });
    }
    await rm(join("/var/lib/cni/networks", name), { recursive: true, force: true });
    await tryRun("ip", ["netns", "delete", name], { timeoutMs: 10_000 });
    await rm(baseDir, { recursive: true, force: true, maxRetries: 3 });
  };

  try {
    for (const d of ["root", "state", "opt", "cni", "bin", "kata-ts"]) await mkdir(join(baseDir, d));
    await writeFile(configPath, config(baseDir, address));
    await writeFile(join(baseDir, "cni", "10-ktsd.conflist"), bridge(name));
    // The node installer's containerd step, exactly as `kata-ts containerd install` runs it.
    await installContainerdHandler({ containerdConfigPath: configPath, runtimePath: packagedShimPath(), shimLinkDir: join(baseDir, "bin") });
    await run("ip", ["netns", "add", name], { timeoutMs: 10_000 });
    await run("ip", ["-n", name, "link", "set", "lo", "up"], { timeoutMs: 10_000 });
    const logFd = openSync(logPath, "a");
    try {
      // nsenter --net only: `ip netns exec` would also give containerd its own mount namespace.
      child = spawn("nsenter", [`--net=${netns}`, "--", "containerd", "--config", configPath], {
        stdio: ["ignore", logFd, logFd],
        env: { ...containerdEnv(process.env), PATH: `${join(baseDir, "bin")}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`, KATA_TS_STATE_DIR: join(baseDir, "kata-ts") },
      });
    } finally {
      closeSync(logFd);
    }
    const started = child;
    started.once("error", () => undefined);
    await waitContainerdReady(address, () => started.exitCode !== null || started.signalCode !== null, logPath, 30_000);
    const images = await ensureTestImages();
    for (const img of [images.pause, images.busybox]) {
      await run("ctr", ["--address", address, "-n", "k8s.io", "images", "import", "--snapshotter", "overlayfs", img.archivePath], { timeoutMs: 120_000 });
    }
    return { baseDir, address, netns, configPath, logPath, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
