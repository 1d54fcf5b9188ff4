// The config.toml of a private containerd 1.6 for tests. Every path lives under the harness's
// temp dir so several instances can run side by side and teardown knows what to remove.
import { stringify } from "smol-toml";

/** One CRI runtime handler, with containerd's own TOML key names. */
export interface RuntimeHandlerConfig {
  runtime_type: string;
  runtime_path?: string;
  privileged_without_host_devices?: boolean;
  pod_annotations?: string[];
  container_annotations?: string[];
  options?: Record<string, string | number | boolean>;
}

export interface HarnessConfigInput {
  rootDir: string;
  stateDir: string;
  address: string;
  ttrpcAddress: string;
  optDir: string;
  cniConfDir: string;
  cniBinDir: string;
  sandboxImage: string;
  runtimes: Record<string, RuntimeHandlerConfig>;
  imports?: string[];
  /** Deep-merged over the rendered config (e.g. { plugins: { "io.containerd.grpc.v1.cri": {...} } }). */
  extraConfig?: Record<string, unknown>;
}

export const CRI_PLUGIN = "io.containerd.grpc.v1.cri";

export const defaultRuntimes: Record<string, RuntimeHandlerConfig> = {
  runc: { runtime_type: "io.containerd.runc.v2", options: { BinaryName: "/usr/sbin/runc" } },
};

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const cur = out[k];
    out[k] = isObj(cur) && isObj(v) ? deepMerge(cur, v) : v;
  }
  return out;
}

export function renderHarnessConfig(c: HarnessConfigInput): string {
  const config: Obj = {
    version: 2,
    root: c.rootDir,
    state: c.stateDir,
    // containerd 1.6 lists imports before the main file in `config dump`; a drop-in added here
    // REPLACES whole plugin sections (see src/deploy/containerd-config.ts).
    ...(c.imports && c.imports.length > 0 ? { imports: c.imports } : {}),
    grpc: { address: c.address },
    ttrpc: { address: c.ttrpcAddress },
    // Plugins that only log errors on this host (no btrfs/zfs/devmapper/aufs).
    disabled_plugins: [
      "io.containerd.snapshotter.v1.btrfs",
      "io.containerd.snapshotter.v1.zfs",
      "io.containerd.snapshotter.v1.aufs",
      "io.containerd.snapshotter.v1.devmapper",
    ],
    plugins: {
      "io.containerd.internal.v1.opt": { path: c.optDir },
      [CRI_PLUGIN]: {
        sandbox_image: c.sandboxImage,
        // Root here lacks CAP_SYS_RESOURCE: runc cannot set the sandbox's oom_score_adj (-998).
        restrict_oom_score_adj: true,
        // Pod netns bind mounts under <state>/netns instead of the host-wide /var/run/netns.
        netns_mounts_under_state_dir: true,
        // A random port on loopback, so instances do not collide.
        stream_server_address: "127.0.0.1",
        stream_server_port: "0",
        cni: { bin_dir: c.cniBinDir, conf_dir: c.cniConfDir, max_conf_num: 1 },
        containerd: {
          snapshotter: "overlayfs",
          default_runtime_name: "runc",
          runtimes: c.runtimes,
        },
      },
    },
  };
  return `${stringify(c.extraConfig ? deepMerge(config, c.extraConfig) : config)}\n`;
}

/**
 * The default pod network: a bridge with host-local IPAM. containerd 1.6's CRI plugin fails
 * RunPodSandbox ("failed to find network info") unless CNI gives the pod an eth0 with an IP, so
 * a loopback-only network is not enough; the harness runs containerd in a netns of its own so
 * the bridge never touches the host's network.
 */
export function bridgeConflist(name: string, bridge: string, subnet: string): string {
  const conf = {
    cniVersion: "1.0.0",
    name,
    plugins: [
      {
        type: "bridge",
        bridge,
        isGateway: true,
        ipMasq: false,
        ipam: { type: "host-local", ranges: [[{ subnet }]], routes: [{ dst: "0.0.0.0/0" }] },
      },
    ],
  };
  return `${JSON.stringify(conf, null, 2)}\n`;
}
