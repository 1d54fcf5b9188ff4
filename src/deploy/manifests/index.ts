// Every Kubernetes object kata-ts ships, as plain objects (validated by src/k8s/validate.ts in the
// tests) and as one multi-document YAML stream for kubectl apply.
import { stringify } from "yaml";
import { defaultInstallerImageRef } from "../installer-image-ref.js";
import { examplePods } from "./examples.js";
import { cleanupManifests, installerManifests, type InstallerOptions } from "./installer.js";
import { loadOverheadData, podFixedOverhead, type OverheadData } from "./overhead.js";
import { runtimeClass } from "./runtime-class.js";

export const MANIFEST_SETS = ["runtimeclass", "installer", "cleanup", "examples", "all"] as const;
export type ManifestSet = (typeof MANIFEST_SETS)[number];
/** What `kata-ts build-installer-image` builds by default (localhost/kata-ts/installer:<version>). */
export const DEFAULT_INSTALLER_IMAGE = defaultInstallerImageRef();

export interface ManifestOptions extends Partial<InstallerOptions> {
  overhead?: OverheadData;
}

export function manifests(set: ManifestSet, o: ManifestOptions = {}): Record<string, unknown>[] {
  const inst = { image: o.image ?? DEFAULT_INSTALLER_IMAGE };
  const rc = () => [runtimeClass(podFixedOverhead(o.overhead ?? loadOverheadData()))];
  switch (set) {
    case "runtimeclass":
      return rc();
    case "installer":
      return installerManifests(inst);
    case "cleanup":
      return cleanupManifests(inst);
    case "examples":
      return examplePods();
    case "all":
      return [...installerManifests(inst), ...rc()];
  }
}

export function toYaml(objs: readonly unknown[]): string {
  return objs.map((o) => stringify(o, { aliasDuplicateObjects: false })).join("---\n");
}
