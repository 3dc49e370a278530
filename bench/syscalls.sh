#!/bin/bash
# Lower syscalls and daemon CPU per phase of the bench's small-file workloads, for one pershome
# build: deterministic counts where wall seconds on the shared machine are noise
# (docs/benchmarks.md, "Third round"). As root; the lower may be any folder (tmpfs, exFAT...).
#
#   bench/syscalls.sh <dist/src/cli/main.js of a build> <label> <folder on the lower>
#
# Prints per phase: wall s, daemon CPU ticks (utime+stime, 1/100 s), and the daemon's lstat/statx,
# fsync, rename and writev (= FUSE replies) calls (strace -c -f). The last rename batch may be
# applied after the phase ends (renames are written behind, within 2 s).
set -eu
cli=$1
label=$2
root=$3
low=$root/low-$label
mnt=$root/mnt-$label
rm -rf "$low" "$mnt"
mkdir -p "$low" "$mnt"
node "$cli" mount "$low" "$mnt" --foreground >"$root/log-$label" 2>&1 &
for _ in $(seq 1 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
pid=$(pgrep -f "main.js mount $low $mnt" | head -1)
cpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }
count() { awk -v names="$2" 'BEGIN{split(names,n,",");for(i in n)want[n[i]]=1} want[$NF]{s+=$4} END{print s+0}' "$1"; }
phase() { # name, shell command run in the mount
  local out=$root/strace-$label-$1
  strace -qq -c -f -p "$pid" -o "$out" &
  local sp=$!
  sleep 0.5
  local c0 t0 t1 c1
  c0=$(cpu)
  t0=$(date +%s.%N)
  (cd "$mnt" && bash -c "$2")
  t1=$(date +%s.%N)
  c1=$(cpu)
  sleep 0.3
  kill -INT $sp
  wait $sp 2>/dev/null || true
  echo "$label $1: wall $(echo "$t1 - $t0" | bc) s, daemon cpu $((c1 - c0)) ticks," \
    "stat $(count "$out" statx,newfstatat,lstat), fsync $(count "$out" fsync,fdatasync)," \
    "rename $(count "$out" rename,renameat,renameat2), replies $(count "$out" writev)"
}
phase create 's=$(head -c 1023 /dev/zero | tr "\0" x); mkdir w; for i in $(seq 1 2000); do printf "%s\n" "$s" > w/f$i; done'
phase rm 'rm -rf w'
phase rename-setup 'python3 -c "import os
for i in range(2000): open(f\"f{i}\",\"w\").write(\"x\")
os.mkdir(\"a\")"'
phase rename 'python3 -c "import os
for i in range(2000): os.rename(f\"f{i}\", f\"g{i}\")
for i in range(2000): os.rename(f\"g{i}\", f\"a/h{i}\")
for i in range(0,2000,2): os.rename(f\"a/h{i}\", f\"a/h{i+1}\")"'
phase symlink 'python3 -c "import os
os.mkdir(\"s\")
for i in range(1000): os.symlink(f\"target-{i}\", f\"s/l{i}\")"'
# git stores each object as a new file link()ed to its final name, then unlinks the first one
phase git-setup 'mkdir g && tar -C /usr/include -cf - linux | tar -C g -xf -'
phase git 'cd g && git init -q && git add -A && git -c user.name=b -c user.email=b@example.org commit -qm x'
umount "$mnt"
sleep 1
rm -rf "$low" "$mnt"
