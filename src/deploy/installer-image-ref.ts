// The installer image's default name, shared by `kata-ts build-installer-image` (which tags the
// archive with it) and `kata-ts manifests` (whose DaemonSet runs it), so the two always agree.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "./paths.js";

export const INSTALLER_IMAGE_NAME = "localhost/kata-ts/installer";

/** The kata-ts package version (package.json), the image's default tag. */
export function packageVersion(root = packageRoot()): string {
  return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
}

export function defaultInstallerImageRef(): string {
  return `${INSTALLER_IMAGE_NAME}:${packageVersion()}`;
}

/** NAME:TAG with the tag after the last "/" (a registry's host:port is not a tag). */
export function isTaggedRef(ref: string): boolean {
  const colon = ref.lastIndexOf(":");
  if (colon < ref.lastIndexOf("/")) return false;
  return /^[a-z0-9][a-z0-9._:/-]*$/.test(ref.slice(0, colon)) && /^\w[\w.-]{0,127}$/.test(ref.slice(colon + 1));
}
