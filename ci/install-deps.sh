#!/usr/bin/env bash
# Installs the Debian packages listed in ci/apt-packages.txt (idempotent; needs root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' "$here/apt-packages.txt")
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
modprobe fuse 2>/dev/null || true
[ -e /dev/fuse ] || { echo "no /dev/fuse on this machine: FUSE is required" >&2; exit 1; }
