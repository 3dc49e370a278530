#!/bin/bash
# Daemon CPU per phase for pershome builds mounted in turn on a tmpfs lower, round after round
# (docs/benchmarks.md, "Fifth round"): deterministic enough where wall seconds on the shared
# machine are noise. As root.
#
#   bench/request-cpu.sh <rounds> <dist/src/cli/main.js of a build> [<another build> ...]
#   N=2000 (files per phase); a build may be given as "<node flags>|<main.js>"
#
# Prints per round and build: daemon CPU ticks (utime+stime, 1/100 s; "main" = the JS thread
# alone, without V8's compiler and GC threads) and wall ms of each phase: N bash creates
# (printf x > w/fN), rm -rf of them, the bench's python rename loop over N files (2.5 N renames).
set -eu
rounds=$1
shift
root=${ROOT:-/var/tmp/pershome-request-cpu}
mkdir -p "$root"
mountpoint -q "$root" || mount -t tmpfs -o size=512m tmpfs "$root"
N=${N:-2000}
for r in $(seq 1 "$rounds"); do
  k=0
  for build in "$@"; do
    k=$((k + 1))
    low=$root/low$k
    mnt=$root/mnt$k
    args=""
    cli=$build
    if [[ "$build" == *"|"* ]]; then
      args=${build%%|*}
      cli=${build#*|}
    fi
    rm -rf "$low" "$mnt"
    mkdir -p "$low" "$mnt"
    # shellcheck disable=SC2086 # node flags, split on purpose
    node $args "$cli" mount "$low" "$mnt" --foreground >"$root/log$k" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
    cpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }
    jscpu() { awk '{print $14+$15}' "/proc/$pid/task/$pid/stat"; }
    out="round $r build $k"
    phase() { # name, shell command run in the mount
      sleep 0.3
      local c0 m0 t0 t1 c1 m1
      c0=$(cpu)
      m0=$(jscpu)
      t0=$(date +%s%N)
      (cd "$mnt" && bash -c "$2")
      t1=$(date +%s%N)
      c1=$(cpu)
      m1=$(jscpu)
      out="$out | $1 $((c1 - c0)) ticks (main $((m1 - m0))) $(((t1 - t0) / 1000000)) ms"
    }
    phase create "mkdir w; for i in \$(seq 1 $N); do printf x > w/f\$i; done"
    phase rm "rm -rf w"
    (cd "$mnt" && python3 -c "import os
for i in range($N): open(f'f{i}','w').write('x')
os.mkdir('a')")
    phase rename "python3 -c 'import os
for i in range($N): os.rename(f\"f{i}\", f\"g{i}\")
for i in range($N): os.rename(f\"g{i}\", f\"a/h{i}\")
for i in range(0,$N,2): os.rename(f\"a/h{i}\", f\"a/h{i+1}\")'"
    umount "$mnt"
    wait "$pid" || true
    echo "$out"
  done
done
