// The two init stages of the guest, as shell scripts run by busybox.
//
// Stage 1 (/init in the initramfs) only does what a kernel without built-in virtio drivers needs
// before it can reach its root: load modules, mount the erofs image read-only, switch_root.
// Stage 2 (/sbin/init in the rootfs) is the guest's PID 1 for its whole life: writable tmpfs
// mounts, cgroup2, the agent, zombie reaping, and ending the VM when the agent dies. Keeping the policy
// in stage 2 means a kernel with the drivers built in can boot the same rootfs without an
// initramfs (root=/dev/vda rootfstype=erofs ro init=/sbin/kata-ts-init).

import { AGENT_CGROUP, AGENT_CGROUP_PARAM } from "../protocol/contract/guest.js";

/** Marker lines on the console; tests and the host match on them. */
export const AGENT_EXIT_PREFIX = "kata-ts-init: agent exited with status";

/** Stage 2; not /sbin/init, which busybox's own init applet would claim. */
export const ROOT_INIT_PATH = "/sbin/kata-ts-init";

export const AGENT_BUNDLE_PATH = "/usr/lib/kata-ts/agent.cjs";
/** V8 startup snapshot of the agent, built inside a build VM (see snapshot.ts); optional. */
export const AGENT_SNAPSHOT_PATH = "/usr/lib/kata-ts/agent.snapshot";
/** Kernel parameter that turns a boot into a snapshot-building run (build-assets only). */
export const SNAPSHOT_BUILD_PARAM = "kata_ts.snapshot=build";
/** Console line the snapshot-building run prints: "<prefix> <bytes>". */
export const SNAPSHOT_BYTES_PREFIX = "kata-ts-init: snapshot bytes";
/** Kernel parameter: the root disk's read-ahead in KiB, set before the agent starts (off by default). */
export const READAHEAD_PARAM = "kata_ts.readahead_kb";
/** The agent's malloc: glibc's default mmap threshold (128 KiB), fixed instead of dynamic. */
export const AGENT_MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=131072";
/** node's exit status when it cannot use a startup snapshot (built by another node or for another CPU). */
export const NODE_SNAPSHOT_FAILURE = 14;

export function initramfsInit(release: string): string {
  return `#!/bin/sh
# kata-ts initramfs stage 1: drivers, read-only root, switch_root.
export PATH=/bin
mount -t devtmpfs -o nosuid devtmpfs /dev
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
fail() {
  echo "kata-ts-init: $*" >/dev/console
  poweroff -f
}
root=/dev/vda
fstype=erofs
init=${ROOT_INIT_PATH}
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="\${arg#root=}" ;;
    rootfstype=*) fstype="\${arg#rootfstype=}" ;;
    init=*) init="\${arg#init=}" ;;
  esac
done
# Dependencies first (precomputed from modules.dep at build time): busybox insmod does not resolve them.
while read -r mod; do
  insmod "/lib/modules/${release}/$mod" || echo "kata-ts-init: insmod $mod failed" >/dev/console
done </lib/modules/${release}/modules.load
# virtio_blk probes synchronously, so the disk is normally there at once; allow 5 s for slow hosts.
n=0
while [ ! -b "$root" ]; do
  n=$((n + 1))
  [ $n -gt 500 ] && fail "root device $root did not appear"
  usleep 10000
done
mount -t "$fstype" -o ro "$root" /newroot || fail "cannot mount $root ($fstype) on /newroot"
for m in dev proc sys; do mount --move "/$m" "/newroot/$m"; done
exec switch_root /newroot "$init"
`;
}

export interface RootInitOptions {
  /** node arguments before the script (V8 flags). */
  nodeArgs: readonly string[];
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function rootInit(opts: RootInitOptions): string {
  const nodeArgs = opts.nodeArgs.map(shellQuote).join(" ");
  return `#!/bin/sh
# kata-ts guest PID 1: writable places, cgroup2, the agent. busybox ash's wait reaps every child
# (waitpid(-1)), so processes orphaned inside the guest are reaped while we wait for the agent.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Without an initramfs the kernel mounted only / and (devtmpfs) /dev.
[ -e /proc/self ] || mount -t proc -o nosuid,nodev,noexec proc /proc
[ -e /sys/kernel ] || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
# Ending the VM: a kernel without ACPI (acpi=off, the project's kernel on q35) has no way to power
# the machine off (poweroff -f would only halt it, and the VM would run on), so it resets it, which
# QEMU's -no-reboot turns into an exit; the host counts a reset that no panic caused as a power-off.
end_vm() {
  [ -d /sys/firmware/acpi ] && poweroff -f
  reboot -f
}
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
: >/run/resolv.conf
busybox ip link set lo up  # static busybox is already in memory; iproute2 pulls in libbpf, libelf, ...
read -r cmdline </proc/cmdline
case " $cmdline " in
  *" ${SNAPSHOT_BUILD_PARAM} "*)
    # build-assets: make the agent's V8 snapshot with this very node on this machine model, hand it
    # to the host on its output disk (the second virtio-blk disk, or the only one when the root is
    # on virtio-pmem), power off. node 20's snapshot builder sometimes aborts when a
    # GC leaves finalization work pending at serialization time; another try usually succeeds.
    for try in 1 2 3; do
      if node ${nodeArgs} --snapshot-blob /tmp/agent.snapshot --build-snapshot ${AGENT_BUNDLE_PATH} </dev/null >/dev/console 2>&1; then
        out=/dev/vdb; [ -b $out ] || out=/dev/vda
        cat /tmp/agent.snapshot >$out && sync &&
          echo "${SNAPSHOT_BYTES_PREFIX} $(wc -c </tmp/agent.snapshot)" >/dev/console
        break
      fi
      echo "kata-ts-init: snapshot build attempt $try failed" >/dev/console
    done
    end_vm
    ;;
esac
# Under TCG (QEMU's CPU model names it) translated code is found again by virtual address: a
# process whose ld.so and libraries land at random addresses is translated anew each time (about
# 5 MiB of host code per crun exec, measured). So the agent, and the crun it starts, run without
# address-space randomization there; containers get theirs back (the agent gives their spec
# linux.personality, which crun sets before exec). busybox's linux64 -R (static, already in memory)
# sets the personality and execs node: $! stays the agent's pid. (util-linux setarch did the same
# at the cost of one more dynamically linked exec: ~0.1-0.2 s of guest time under TCG.)
norand=
grep -q '^model name.*TCG' /proc/cpuinfo && norand="busybox linux64 -R"
# glibc's malloc raises its mmap threshold to the largest block freed so far: node frees the
# snapshot file it read (5.7 MB), after which every block up to that size comes from the brk heap,
# whose holes are never given back. A fixed threshold keeps large blocks in mmap, returned when
# freed: ~0.8 MiB less of the agent's resident memory (docs/density.md).
# With ${AGENT_CGROUP_PARAM} the agent runs in a cgroup of its own (${AGENT_CGROUP}) from its first
# page on: a page stays charged to the cgroup that faulted it in, so only then does an idle reclaim
# of that cgroup (ReclaimIdleMemory, src/agent/idle-reclaim.ts) take all of the agent's memory and no
# container's. PID 1 steps into it for the fork and back out, which spares an exec (a busybox sh -c)
# under TCG. Without the parameter the memory controller stays off until a container needs it: on
# at boot it costs ~4 MiB of guest RAM (its per-cgroup state and charging of every page).
agent_cgroup=
case " $cmdline " in
  *" ${AGENT_CGROUP_PARAM} "*)
    agent_cgroup=/sys/fs/cgroup${AGENT_CGROUP}
    mkdir -p $agent_cgroup
    echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ;;
esac
start_agent() {
  if [ -n "$agent_cgroup" ]; then echo $$ >$agent_cgroup/cgroup.procs 2>/dev/null; fi
  if [ "$1" = snapshot ]; then
    GLIBC_TUNABLES=${AGENT_MALLOC_TUNABLES} $norand node ${nodeArgs} --snapshot-blob ${AGENT_SNAPSHOT_PATH} </dev/null >/dev/console 2>&1 &
  else
    GLIBC_TUNABLES=${AGENT_MALLOC_TUNABLES} $norand node ${nodeArgs} ${AGENT_BUNDLE_PATH} </dev/null >/dev/console 2>&1 &
  fi
  agent=$!
  if [ -n "$agent_cgroup" ]; then echo $$ >/sys/fs/cgroup/cgroup.procs 2>/dev/null; fi
}
# ${READAHEAD_PARAM}=N: the root disk's read-ahead in KiB (kernel default 128), a density knob: node's
# code is read from the image by page faults, each reading N KiB around it, and what is read stays
# mapped. The snapshot is read first, at the default, because it is read whole (docs/guest.md).
for arg in $cmdline; do
  case "$arg" in
    ${READAHEAD_PARAM}=*)
      [ -e ${AGENT_SNAPSHOT_PATH} ] && cat ${AGENT_SNAPSHOT_PATH} >/dev/null
      echo "\${arg#*=}" >/sys/block/vda/queue/read_ahead_kb || echo "kata-ts-init: $arg not applied" >/dev/console ;;
  esac
done
mode=script
[ -e ${AGENT_SNAPSHOT_PATH} ] && mode=snapshot
read -r up _ </proc/uptime
echo "kata-ts-init: starting agent ($mode) at \${up}s" >/dev/console
start_agent $mode
wait $agent
status=$?
if [ $mode = snapshot ] && [ $status = ${NODE_SNAPSHOT_FAILURE} ]; then
  # A snapshot only loads on the node and CPU model it was made for; the script always works.
  echo "kata-ts-init: agent snapshot not usable here; starting the agent script" >/dev/console
  start_agent script
  wait $agent
  status=$?
fi
echo "${AGENT_EXIT_PREFIX} $status" >/dev/console
end_vm
`;
}
