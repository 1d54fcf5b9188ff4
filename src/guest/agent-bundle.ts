// The agent as ONE CommonJS file (every npm dependency inlined) built with esbuild from
// src/agent/main.ts. A plain script (main.ts has no exports), so node's --build-snapshot can take
// it as is; minified because under TCG the guest pays for every byte V8 parses.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KataError } from "../util/errors.js";

export interface AgentBundle {
  code: Uint8Array;
  sha256: string;
  version: string;
}

/** The kata-ts source checkout this module runs from (works from src/ under tsx and from dist/src/). */
export async function findProjectRoot(from = dirname(fileURLToPath(import.meta.url))): Promise<string> {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = await readFile(join(dir, "package.json"), "utf8").catch(() => undefined);
    if (pkg !== undefined && (JSON.parse(pkg) as { name?: string }).name === "kata-ts") {
      await stat(join(dir, "src", "agent", "main.ts")).catch((err: unknown) => {
        throw new KataError("NOT_FOUND", `${dir} has no src/agent/main.ts: build-assets needs the kata-ts source tree`, { cause: err });
      });
      return dir;
    }
    if (dirname(dir) === dir) throw new KataError("NOT_FOUND", "cannot find the kata-ts source tree (package.json) above " + from);
  }
}

export async function bundleAgent(projectRoot?: string): Promise<AgentBundle> {
  const root = projectRoot ?? (await findProjectRoot());
  const version = (JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { version: string }).version;
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [join(root, "src", "agent", "main.ts")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    keepNames: false,
    legalComments: "none",
    write: false,
    logLevel: "silent",
    define: { __KATA_TS_AGENT_VERSION__: JSON.stringify(version) },
  });
  const file = result.outputFiles[0];
  if (file === undefined) throw new KataError("INTERNAL", "esbuild produced no agent bundle");
  return { code: file.contents, sha256: createHash("sha256").update(file.contents).digest("hex"), version };
}
