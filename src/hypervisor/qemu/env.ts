// QEMU's process environment: the host's, plus what makes QEMU's own heap smaller.
//
// G_SLICE=always-malloc: GLib before 2.76 (Debian 12 ships 2.74) serves g_slice_new() from its own
// per-thread magazine allocator. Under TCG the vCPU thread allocates a GTree node per translated
// block (QEMU's region tree, ~60,000 live blocks after a boot) and frees them all at every cache
// flush; in magazines and slabs that churn cost ~1.7 MiB more than in glibc's malloc (QEMU's other
// anonymous memory 15.7 -> 14.0 MiB per VM, same boot CPU: docs/density.md "QEMU's anonymous
// memory"). GLib 2.76 and later always use malloc and ignore the variable.

/** What kata-ts adds to QEMU's environment; a value already set in the caller's environment wins. */
export const qemuEnvDefaults: Readonly<Record<string, string>> = { G_SLICE: "always-malloc" };

export function qemuEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const [key, value] of Object.entries(qemuEnvDefaults)) env[key] ??= value;
  return env;
}
