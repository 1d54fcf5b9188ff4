// Where the installer finds kata-ts's own files when run from a checkout or an npm install.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KataError } from "../util/errors.js";

/** The kata-ts package root (the dir whose package.json is named kata-ts), found upward from here. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "kata-ts") return dir;
    const up = dirname(dir);
    if (up === dir) throw new KataError("NOT_FOUND", "kata-ts package root not found above the installer; pass --runtime-path");
    dir = up;
  }
}

/** The shim launcher containerd runs for runtime_type io.containerd.kata-ts.v2. */
export function packagedShimPath(): string {
  return join(packageRoot(), "bin", "containerd-shim-kata-ts-v2");
}
