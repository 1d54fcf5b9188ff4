// kata-ts build-installer-image: write the installer DaemonSet's image (busybox, node, kubectl,
// kata-ts, guest assets) as an OCI archive for `ctr images import` or a registry push.
// Logic: src/deploy/installer-image.ts.
import { parseArgs } from "node:util";
import { defaultInstallerImagePath, buildInstallerImage } from "../../deploy/installer-image.js";
import { defaultInstallerImageRef, isTaggedRef } from "../../deploy/installer-image-ref.js";
import { describeError } from "../../util/errors.js";

const USAGE = `usage: kata-ts build-installer-image [--output FILE] [--ref NAME:TAG] [--kubectl PATH] [--assets DIR] [--force]
  --output   archive to write (default ${defaultInstallerImagePath()})
  --ref      image reference stored in the archive (default ${defaultInstallerImageRef()},
             the image kata-ts manifests uses by default)
  --kubectl  kubectl binary to put in the image (default: the first on PATH)
  --assets   guest assets dir (default $KATA_TS_ASSETS_DIR or /var/lib/kata-ts/assets)
  --force    rebuild even when FILE was built from the same inputs
Then: ctr -n k8s.io images import FILE on each node, or push it (skopeo copy oci-archive:FILE docker://REGISTRY/NAME:TAG)
and pass --ref/--image with that name.
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        output: { type: "string" },
        ref: { type: "string" },
        kubectl: { type: "string" },
        assets: { type: "string" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(`kata-ts build-installer-image: ${describeError(err)}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.ref !== undefined && !isTaggedRef(values.ref)) {
    process.stderr.write(`kata-ts build-installer-image: --ref must be NAME:TAG, not "${values.ref}"\n${USAGE}`);
    return 2;
  }
  const img = await buildInstallerImage({
    output: values.output,
    ref: values.ref,
    force: values.force,
    sources: { ...(values.kubectl === undefined ? {} : { kubectl: values.kubectl }), ...(values.assets === undefined ? {} : { assetsDir: values.assets }) },
    log: (line) => process.stderr.write(`kata-ts build-installer-image: ${line}\n`),
  });
  const mib = (img.size / 1024 / 1024).toFixed(1);
  process.stdout.write(`ref      ${img.ref}\narchive  ${img.archivePath} (${mib} MiB${img.reused ? ", inputs unchanged: kept" : ""})\n`);
  return 0;
}
