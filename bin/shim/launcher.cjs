// containerd runtime v2 shim for kata-ts (runtime type io.containerd.kata-ts.v2): the Node half of
// the launcher, run by bin/shim/containerd-shim-kata-ts-v2 (sh, reached through the link
// bin/containerd-shim-kata-ts-v2) for everything its short path does not answer. CommonJS
// (bin/shim/package.json), since an ESM entry costs ~25 ms more CPU on every `start` (docs/shim.md "Start-up").
// The compiled shim lives in dist/: its front entry and single-file bundle when `npm run build` made
// them after the last tsc run, else the tsc output. The same choice as shimLauncherEntryIn in
// src/shim/bundle-path.ts (an ESM module, which this file cannot require on node 20), kept in step
// by test/unit/shim-bundle.test.ts.
"use strict";
const { statSync } = require("node:fs");
const { join } = require("node:path");
const { pathToFileURL } = require("node:url");

const dir = join(__dirname, "..", "..", "dist", "src", "shim");
const mtime = (name) => statSync(join(dir, name), { throwIfNoEntry: false })?.mtimeMs ?? -1;
const fail = (err) => {
  process.stderr.write(`containerd-shim-kata-ts-v2: cannot load the shim: ${err}\n`);
  process.exitCode = 1;
};
const main = mtime("main.js");
const bundle = mtime("containerd-shim-kata-ts-v2.cjs");
try {
  if (bundle < 0 || bundle < main) import(pathToFileURL(join(dir, "main.js")).href).catch(fail);
  else require(join(dir, mtime("containerd-shim-kata-ts-v2-front.cjs") >= bundle ? "containerd-shim-kata-ts-v2-front.cjs" : "containerd-shim-kata-ts-v2.cjs"));
} catch (err) {
  fail(err);
}
