// Starting a process already inside given cgroups, without moving the caller: the command runs
// through /bin/sh, which writes its own pid into each directory's cgroup.procs and then execs the
// command (same pid). So the process is in those cgroups between fork and exec, before the
// command's first instruction: on cgroup v1, where the kernel does not move memory charges with a
// process, everything it allocates is charged there from the first page. A failed write exits 126
// before the command runs (with sh's message on stderr); the dirs travel as arguments, never
// through the script text, so no path needs quoting. Measured in docs/shim.md ("Memory").

/** A command as spawn() takes it. */
export interface StartCommand {
  binary: string;
  args: string[];
}

/** The process's name while the shell runs (its $0: what `ps` and sh's error messages show). */
export const CGROUP_EXEC_NAME = "kata-ts-cgexec";

/** Exit status when a cgroup write fails (as a shell's "cannot execute"): the command never ran. */
export const CGROUP_EXEC_FAILED = 126;

// $1 is how many dirs follow; then the dirs; then the command and its arguments.
const script =
  'n=$1; shift; while [ "$n" -gt 0 ]; do ' +
  `echo $$ >"$1/cgroup.procs" || { printf '%s: cannot join cgroup %s: the command was not started\\n' "$0" "$1" >&2; exit ${CGROUP_EXEC_FAILED}; }; ` +
  'n=$((n - 1)); shift; done; exec "$@"';

/**
 * `binary args` started in `dirs` (cgroupfs directories, one per hierarchy, e.g.
 * /sys/fs/cgroup/memory/kubepods/pod1/abc). No dirs: the command as it is (it inherits the caller's).
 */
export function startInCgroups(dirs: readonly string[], binary: string, args: readonly string[]): StartCommand {
  if (dirs.length === 0) return { binary, args: [...args] };
  return { binary: "/bin/sh", args: ["-c", script, CGROUP_EXEC_NAME, String(dirs.length), ...dirs, binary, ...args] };
}
