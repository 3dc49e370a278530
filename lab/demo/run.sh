#!/usr/bin/env bash
# One command for a newcomer on a fresh Debian machine (as root): install what the demo needs,
# build, and run Joseph's day on a virtual FAT32 stick (npm run demo).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash ci/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run demo
