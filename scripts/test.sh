#!/usr/bin/env bash
# The test command: set-up, lint, then every test (unit, integration with real VMs, e2e with real
# containerd). Type errors already fail the compile in bootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "test: lint" >&2
npx eslint .
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
node --test --test-concurrency=1 --test-timeout=900000 "${files[@]}"
