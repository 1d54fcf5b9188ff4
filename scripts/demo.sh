#!/usr/bin/env bash
# npm run demo: bootstrap what is missing (npm ci, compile, kata-ts setup: Debian packages, guest
# assets), then `kata-ts demo`: a runc pod and a kata-ts pod side by side, cleaned up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "npm run demo: needs root (it starts containerd, network namespaces and VMs); try: sudo npm run demo" >&2
  exit 1
fi
bash scripts/bootstrap.sh
exec node bin/kata-ts.js demo "$@"
