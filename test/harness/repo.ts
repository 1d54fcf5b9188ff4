// The repository root, found from this file's location (works from dist/ and from sources).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "kata-ts") return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("kata-ts repository root not found above test/harness");
    dir = up;
  }
}

/** Where the shim binary lives in the work tree (containerd runs it as runtime_path). */
export function repoShimPath(): string {
  return join(repoRoot(), "bin", "containerd-shim-kata-ts-v2");
}
