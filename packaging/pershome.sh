#!/bin/sh
# /usr/bin/pershome: runs the pershome command (installed under /usr/lib/pershome) with Node.js.
node=$(command -v node || command -v nodejs) || {
  echo "pershome: Node.js (20.15 or newer) is not installed" >&2
  exit 1
}
exec "$node" /usr/lib/pershome/dist/src/cli/main.js "$@"
