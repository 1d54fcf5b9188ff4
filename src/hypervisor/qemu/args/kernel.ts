// Direct kernel boot: no firmware disk boot, the VMM loads the kernel (ELF vmlinux via PVH, or a
// bzImage) and initrd itself and passes the command line.
import { KataError } from "../../../util/errors.js";

export interface KernelOptions {
  kernelPath: string;
  initrdPath?: string;
  cmdline: readonly string[];
}

export function renderKernel(opts: KernelOptions): string[] {
  for (const param of opts.cmdline) {
    if (param === "" || /\s/.test(param)) {
      throw new KataError("INVALID_ARGUMENT", `kernel parameter ${JSON.stringify(param)} is empty or contains whitespace`);
    }
  }
  const args = ["-kernel", opts.kernelPath];
  if (opts.initrdPath !== undefined) args.push("-initrd", opts.initrdPath);
  args.push("-append", opts.cmdline.join(" "));
  return args;
}
