#!/bin/bash
# Builds (once a day) a clean Debian 12 root for the package test, with debootstrap --variant=minbase
# from the same mirror apt uses on this machine, and prints its path. Cached under .cache/ keyed by
# the date; a half-built root (no .complete marker) is thrown away and rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${PERSHOME_DEBROOT_CACHE:-$here/.cache/debroot}
root=$cache/bookworm-$(date -u +%Y%m%d)
if [ -f "$root/.complete" ]; then echo "$root"; exit 0; fi
# the mirror apt uses here (deb822 sources first, then one-line sources.list)
mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -m1 '/debian/*$' || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '$3 == "bookworm" {print $2}' | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$root" "$root.tmp"
mkdir -p "$cache"
# older days' roots are no longer used
find "$cache" -maxdepth 1 -name 'bookworm-*' -type d -exec rm -rf {} + 2>/dev/null || true
debootstrap --variant=minbase bookworm "$root.tmp" "$mirror" >&2
mv "$root.tmp" "$root"
touch "$root/.complete"
echo "$root"
