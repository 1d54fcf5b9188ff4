// The pool's reaper: a tiny shell process, in its own process group, whose stdin is a pipe from the
// pool daemon. It blocks reading it; EOF means the daemon is gone, however it went (SIGKILL too).
// Everything still under the pool's vms/ dir is the pool's (a shim takes a VM by renaming its dir
// out first), so it kills every process whose command line names such a VM dir (QEMU, virtiofsd, a
// QEMU still starting under nsenter: no pid file needed, no reused pid hit), removes their netns
// names, virtiofsd pid files, mounts and dirs, and finally the pool's own files. A dir named
// <vm>.untaken is one the daemon was reclaiming (pooled-vm.ts reclaimUntaken): its processes still
// name <vm>/. After a graceful stop it finds nothing.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { setPriority } from "node:os";
import { join } from "node:path";
import { cgroupHierarchies } from "../sandbox/host-cgroup.js";
import { virtiofsdPidFile } from "../sandbox/virtiofsd.js";

const script = String.raw`
pool="$1"
cat >/dev/null 2>&1
for d in "$pool"/vms/*; do
  [ -d "$d" ] || continue
  b="$(dirname "$d")/$(basename "$d" .untaken)"
  i=0
  while [ $i -lt 50 ]; do
    found=
    for p in /proc/[0-9]*; do
      pid=$(basename "$p")
      [ "$pid" = "$$" ] && continue
      if grep -qaF "$b/" "$p/cmdline" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; found=1; fi
    done
    [ -z "$found" ] && break
    sleep 0.1; i=$((i+1))
  done
  ip netns del "kts-pool-$(basename "$b")" 2>/dev/null
  rm -f "$(dirname "$3")/$(printf %s "$b/vfs.sock" | tr / .).pid"
  umount -l "$d/shared" 2>/dev/null; umount -l "$d/shared" 2>/dev/null
  rm -rf "$d"
done
if [ "$(cat "$pool/pool.pid" 2>/dev/null)" = "$2" ]; then
  # The warm shim servers' control sockets: each server removes its own as it retires on the
  # daemon's death, but maybe after this rmdir; they were the dead daemon's to hand out.
  rm -f "$pool/pool.sock" "$pool/pool.pid" "$pool"/warm-*.sock
  rmdir "$pool/vms" "$pool" 2>/dev/null
fi
exit 0
`;

export interface Watchdog {
  /** Closing the pipe is what sets the watchdog off; on a graceful stop it finds nothing pooled. */
  release(): void;
  exited: Promise<void>;
  pid: number | undefined;
}

export function startWatchdog(poolRoot: string, daemonPid: number): Watchdog {
  // $3: any pid file path of virtiofsd's, for its directory (virtiofsd leaves them behind when killed).
  const child: ChildProcess = spawn("sh", ["-c", script, "kata-ts-pool-watchdog", poolRoot, String(daemonPid), virtiofsdPidFile("/x")], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"],
  });
  // When it is needed it must clean up promptly (it walks /proc with a grep per process): nice 0
  // (whatever the daemon was started at) and out of the pool's cgroup, into the root one.
  if (child.pid !== undefined) {
    const pid = child.pid;
    try {
      setPriority(pid, 0);
    } catch {
      // not permitted: it stays at the daemon's nice value
    }
    void cgroupHierarchies()
      .then(async (hs) => {
        for (const h of hs) await writeFile(join(h.mount, "cgroup.procs"), String(pid)).catch(() => undefined);
      })
      .catch(() => undefined);
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stdin?.on("error", () => undefined);
  return { release: () => child.stdin?.end(), exited, pid: child.pid };
}
