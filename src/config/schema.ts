// The shape of configuration.toml, in the spirit of Kata's: [hypervisor.qemu] (and
// [hypervisor.cloud-hypervisor], [hypervisor.firecracker]), [agent], [runtime].
// Every table rejects unknown keys so that a typo fails loudly instead of silently using a default.
// Defaults live here and only here (the few that code outside configuration uses are in
// defaults.ts, which loads no zod); docs/configuration.md and config/configuration.toml.example
// describe the same values (a unit test keeps the example in step).
import { z } from "zod";
import { defaultImageDeviceFor, defaultQemuMachine, defaultPoolTcgTbSizeMiB, defaultTcgIdleTrimS, defaultTcgTbSizeMiB, hypervisorNames } from "./defaults.js";

export { defaultImageDeviceFor, defaultQemuImageDevice, defaultQemuMachine, defaultTcgTbSizeMiB, hypervisorNames, selectedVmmConfig, type HypervisorName } from "./defaults.js";

/** Empty string means "take it from the guest assets manifest" (kata-ts build-assets). */
const assetPath = z.string().default("");

/** Keys every VMM section has: the guest assets and the baseline VM size. */
const guestKeys = {
  kernel: assetPath,
  initrd: assetPath,
  image: assetPath,
  /** Extra guest kernel parameters, appended after the ones the assets need. */
  kernel_params: z.array(z.string()).default([]),
  default_vcpus: z.int().min(1).max(256).default(1),
  /** Guest memory in MiB before the pod's own sizing is added. */
  default_memory: z.int().min(64).max(1024 * 1024).default(512),
};

export const qemuSchema = z
  .strictObject({
    /** QEMU binary; a bare name is looked up on PATH. */
    path: z.string().min(1).default("qemu-system-x86_64"),
    ...guestKeys,
    /** `auto` boots with KVM when a real KVM boot works on this host, TCG otherwise. */
    accel: z.enum(["auto", "kvm", "tcg"]).default("auto"),
    /** TCG translation cache, MiB (see defaultTcgTbSizeMiB). */
    tcg_tb_size: z.int().min(4).max(4096).default(defaultTcgTbSizeMiB),
    /** TCG: seconds of idleness before a pod VM's translation cache is given back (0: never; see defaultTcgIdleTrimS). */
    tcg_idle_trim_s: z.int().min(0).max(86_400).default(defaultTcgIdleTrimS),
    /** TCG, with tcg_idle_trim_s: before an idle VM's cache is given back, its agent compresses its own memory into the guest's zram swap. */
    tcg_idle_reclaim_agent: z.boolean().default(false),
    /** Machine type: "microvm" (virtio-mmio) or "q35" (virtio-pci, qboot firmware; can map virtio-pmem). */
    machine: z.enum(["microvm", "q35"]).default(defaultQemuMachine),
    /** How the guest image is attached: "disk" (read-only virtio-blk) or "pmem" (read-only virtio-pmem, DAX; needs machine = "q35"). */
    image_device: z.enum(["disk", "pmem"]).optional(),
    /** virtiofsd used to share container root filesystems with the guest. */
    virtio_fs_daemon: z.string().min(1).default("/usr/lib/qemu/virtiofsd"),
    /** Guest RAM shared with virtiofsd in 2 MiB pages (a file on a huge-page tmpfs kata-ts mounts) instead of a memfd. */
    huge_guest_ram: z.boolean().default(false),
  })
  .transform((q) => ({ ...q, image_device: q.image_device ?? defaultImageDeviceFor(q.machine) }))
  .refine((q) => !(q.image_device === "pmem" && q.machine === "microvm"), {
    message: 'image_device = "pmem" needs machine = "q35": QEMU\'s microvm never maps a memory device into the guest, so the guest would get no /dev/pmem0 (or set image_device = "disk")',
    path: ["image_device"],
  })
  .prefault({});

export const cloudHypervisorSchema = z
  .strictObject({
    /** cloud-hypervisor binary (not packaged for Debian 12: a release binary); a bare name is looked up on PATH. */
    path: z.string().min(1).default("cloud-hypervisor"),
    ...guestKeys,
    /** How the guest image is attached: "disk" (virtio-blk) or "pmem" (virtio-pmem: DAX, page cache shared by every VM). */
    image_device: z.enum(["disk", "pmem"]).default("disk"),
    virtio_fs_daemon: z.string().min(1).default("/usr/lib/qemu/virtiofsd"),
  })
  .prefault({});

export const firecrackerSchema = z
  .strictObject({
    /** firecracker binary (not packaged for Debian 12: a release binary); a bare name is looked up on PATH. */
    path: z.string().min(1).default("firecracker"),
    ...guestKeys,
    /** Firecracker takes at most 32 vCPUs. */
    default_vcpus: z.int().min(1).max(32).default(1),
    /** Placeholder drives each VM boots with, one per container at a time (Firecracker cannot hotplug drives). */
    block_slots: z.int().min(1).max(16).default(8),
  })
  .prefault({});

export const hypervisorSchema = z
  .strictObject({ qemu: qemuSchema, "cloud-hypervisor": cloudHypervisorSchema, firecracker: firecrackerSchema })
  .prefault({});

export const agentSchema = z
  .strictObject({
    /** Seconds to wait from VM start until the guest agent answers its health check. */
    dial_timeout: z.number().positive().max(3600).default(120),
    /**
     * Seconds the guest console may stay silent before the agent answers. A guest silent that long
     * is stuck (not slow): it is killed and booted once more within dial_timeout. 0 turns this off.
     */
    boot_stall_timeout: z.number().min(0).max(3600).default(30),
    /**
     * Seconds the running guest's agent may leave its periodic health check unanswered before the
     * guest counts as wedged (paused, stopped, hung): the pod's VM is killed and its containers exit.
     */
    liveness_timeout: z.number().min(1).max(3600).default(30),
    /**
     * Seconds between those health checks, at most (and at most a third of liveness_timeout). Each
     * check wakes the shim, QEMU and the guest: on an idle TCG pod that was measurable CPU at 5 s.
     */
    liveness_interval: z.number().min(1).max(3600).default(10),
    /** Seconds any single agent request may take (WaitProcess is exempt: it blocks by design). */
    request_timeout: z.number().positive().max(3600).default(30),
    debug: z.boolean().default(false),
  })
  .prefault({});

export const runtimeSchema = z
  .strictObject({
    /** The VMM every pod of this runtime runs in; its settings are [hypervisor.<name>]. */
    hypervisor: z.enum(hypervisorNames).default("qemu"),
    debug: z.boolean().default(false),
    log_level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
    /** Put the VMM and its helpers in the pod's cgroup only (no extra sandbox cgroup overhead accounting). */
    sandbox_cgroup_only: z.boolean().default(false),
    /** How the guest NIC is wired to the pod's veth: a tap mirrored with tc filters. */
    internetworking_model: z.enum(["tcfilter", "none"]).default("tcfilter"),
    /**
     * MiB of a pod's memory limits whose guest page metadata (`struct page`, 1/64 of the VM's
     * memory, and page tables, 1/512) the RuntimeClass's overhead.podFixed covers. Above it, each
     * container's limit in the guest is lowered by its share of the metadata of the rest, so that a
     * pod using all its memory stays under kubelet's pod limit (limits + podFixed) instead of being
     * OOM-killed by the host, VM and all (src/shim/guest-memory-limit.ts). Raise it with podFixed.
     */
    overhead_covers_limits_mib: z.number().int().min(0).default(512),
    /**
     * Who serves a pod's task API: "node" (the default), one node-level server for every pod,
     * whose keeper holds containerd's connections so that the server's crash or upgrade ends no
     * pod (docs/shim.md "The node-level server"), or "pod", a shim process per pod (~15-18 MiB
     * each, charged to the pod's cgroup: the RuntimeClass's podFixed assumes "node"). Read by
     * `start` (config/peek.ts); $KATA_TS_SHIM_SERVER in containerd's environment overrides it.
     */
    shim_server: z.enum(["pod", "node"]).default("node"),
  })
  .prefault({});

export const guestSchema = z
  .strictObject({
    /**
     * The guest kernel `kata-ts build-assets` (and setup) builds into the assets: "project" (built
     * from Debian's linux-source with the fragments in src/guest/kernel/config; no initramfs, root
     * on virtio-pmem with DAX) or "debian-cloud" (Debian's cloud kernel package, modules loaded
     * from an initramfs, root on virtio-blk).
     */
    kernel: z.enum(["project", "debian-cloud"]).default("project"),
  })
  .prefault({});

/** The VM pool (src/pool, docs/pool.md): VMs booted before pods ask, one pool per VM shape. */
export const factorySchema = z
  .strictObject({
    /**
     * Shims take a pre-booted VM from the node's pool daemon (`kata-ts pool serve`, started by the
     * first shim that finds none) when one of the pod's shape is ready. On by default: it holds
     * pool_size x max_shapes ready VMs (~105 MiB PSS each at 512 MiB, TCG: node memory for kubelet's systemReserved; docs/pool.md).
     */
    enable_pool: z.boolean().default(true),
    /** Ready VMs kept per shape; each holds ~105-116 MiB PSS at 512 MiB, TCG (docs/pool.md "Memory cost"). */
    // 0: no VMs pooled, the daemon keeps warm shim servers only (warm_shims).
    pool_size: z.int().min(0).max(64).default(1),
    /** Shapes pooled at once: the default shape, plus shapes pods asked for, first come first kept. */
    max_shapes: z.int().min(1).max(64).default(1),
    /** Seconds to wait after a VM is taken before booting its replacement (a burst of pods first). */
    refill_delay: z.number().min(0).max(3600).default(0),
    /**
     * Seconds a shim has to take a VM the pool handed it (rename its dir out of the pool); one still
     * there after that is stopped (its shim died between the answer and the rename). A shim that
     * renames later finds it gone and boots its own VM.
     */
    handover_timeout: z.number().min(1).max(3600).default(60),
    /** Nice value pooled VMs boot and wait at (19: only idle CPU); an adopted VM gets the shim's. */
    refill_nice: z.int().min(0).max(19).default(19),
    /** Pod annotation whose value separates pools: VMs pooled for one tenant never go to another. */
    tenant_annotation: z.string().default("io.katats.pool-tenant"),
    /**
     * A pooled VM's guest runs one container of its own image (busybox from the read-only root:
     * create, start, exec `true`, remove) while it waits, so the pod's first container start and
     * exec find crun and the agent's path warm. Only image content runs, and nothing of it is left
     * (docs/containers.md "Warm-up"). Costs each pooled VM ~1-2 CPU-s once and ~9 MiB of page cache.
     */
    warm_up_containers: z.boolean().default(true),
    /**
     * Under TCG, once a pooled VM is prepared (with warm_up_containers): empty QEMU's translation
     * cache, then the guest rehearses a pod's path once more (adoption's guest calls with
     * documentation addresses, undone; a container of its own image created, started, exec'd into,
     * removed), so the cache holds that path when the VM is offered (docs/pool.md "Flush and
     * rehearse"). A failed flush or rehearsal discards the VM.
     */
    rehearse_pod_path: z.boolean().default(true),
    /**
     * TCG translation cache (MiB) of the pool's VMs when they rehearse the pod path (the rehearsed
     * path is ~49 MiB of host code, the pod adds ~2: at 40 it overflows during the pod's start;
     * docs/pool.md "Flush and rehearse"). Other VMs keep [hypervisor.qemu] tcg_tb_size.
     */
    tcg_tb_size: z.int().min(4).max(4096).default(defaultPoolTcgTbSizeMiB),
    /**
     * Shim servers the pool daemon keeps started and loaded (0: none): a pod's `start` takes one
     * instead of waiting for a fresh server's Node start-up (~0.25-0.5 s). Each holds ~15 MiB
     * (an idle shim server) until a pod takes it (docs/shim.md "Warm servers").
     */
    warm_shims: z.int().min(0).max(16).default(1),
    /**
     * An adopted pod's sandbox is reported started once its pooled VM is the pod's on the host
     * (taken, attached, agent connected); the pod network's host side and the guest's set-up
     * (CreateSandbox, UpdateNetwork) finish beside containerd's CreateContainer, whose container
     * waits for them (deadline: agent.liveness_timeout). A failure then stops the VM and the
     * sandbox task exits (docs/pool.md "Deferred adoption").
     */
    deferred_adoption: z.boolean().default(true),
  })
  .prefault({});

export const configSchema = z
  .strictObject({
    hypervisor: hypervisorSchema,
    guest: guestSchema,
    agent: agentSchema,
    runtime: runtimeSchema,
    factory: factorySchema,
  })
  .prefault({});

export type KataConfig = z.output<typeof configSchema>;
export type QemuConfig = KataConfig["hypervisor"]["qemu"];
export type CloudHypervisorConfig = KataConfig["hypervisor"]["cloud-hypervisor"];
export type FirecrackerConfig = KataConfig["hypervisor"]["firecracker"];
/** The keys every [hypervisor.<name>] section has. */
export type VmmSectionConfig = Pick<QemuConfig, "path" | "kernel" | "initrd" | "image" | "kernel_params" | "default_vcpus" | "default_memory">;

export type AgentConfig = KataConfig["agent"];
export type RuntimeConfig = KataConfig["runtime"];
export type FactoryConfig = KataConfig["factory"];
export type GuestConfig = KataConfig["guest"];

/** The configuration when no file is found: every default. */
export function defaultConfig(): KataConfig {
  return configSchema.parse({});
}
