#!/usr/bin/env bash
# Everything a fresh Debian 12 machine (as root) needs before kata-ts runs: npm dependencies,
# the compiled project (tsc, then the shim's single-file bundle), then `kata-ts setup` (Debian
# packages, guest assets).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi
echo "bootstrap: compiling" >&2
npm run --silent build >&2
node bin/kata-ts.js setup
