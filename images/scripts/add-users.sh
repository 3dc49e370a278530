#!/bin/bash
# Adds the lab users (scripts/lab-users) with useradd -m and password = name. Runs in a chroot.
set -euo pipefail
while read -r name uid; do
  case $name in "" | "#"*) continue ;; esac
  if ! getent passwd "$name" >/dev/null; then
    groupadd -g "$uid" "$name"
    useradd -m -u "$uid" -g "$uid" -s /bin/bash -c "$name (lab user)" "$name"
  fi
  echo "$name:$name" | chpasswd
done < "$(dirname "$0")/lab-users"
