#!/bin/sh
# pershome lab agent: the harness's control channel on /dev/ttyS1 (see docs/lab-images.md).
#   agent -> host:  READY <token|boot> <boot_id>            (at start, and for each "PING <token>")
#   host -> agent:  C <id> <base64 of a shell command>      (run with sh -c as root in /, in the background)
#   agent -> host:  R <id> <rc> <base64 of stdout+stderr>   (one line; output over 1 MiB: its last 1 MiB)
# Replies are written under flock, so lines never interleave.
set -u
DEV=${PERSHOME_LAB_AGENT_DEV:-/dev/ttyS1}
STATE=/run/pershome-lab
LIMIT=1048576
mkdir -p "$STATE"
: > "$STATE/lock"
stty -F "$DEV" raw -echo -ixon -ixoff -crtscts 115200 2>/dev/null || stty -F "$DEV" raw -echo
exec 3<>"$DEV"
BOOT_ID=$(cat /proc/sys/kernel/random/boot_id)

# reply LINE-PRODUCING-COMMAND...: runs the command with fd 3 locked
say() {
  (
    flock 9
    printf '%s\n' "$1" >&3
  ) 9>"$STATE/lock"
}

run_cmd() {
  id=$1
  out=$STATE/out.$id.$$
  cmd=$(printf '%s' "$2" | base64 -d 2>/dev/null) || {
    say "R $id 127 $(printf 'agent: bad base64\n' | base64 -w0)"
    return
  }
  (cd / && exec sh -c "$cmd") </dev/null >"$out" 2>&1 3>&-
  rc=$?
  size=$(stat -c %s "$out")
  if [ "$size" -gt "$LIMIT" ]; then
    { printf '[agent: output was %s bytes; only its last %s follow]\n' "$size" "$LIMIT"; tail -c "$LIMIT" "$out"; } >"$out.cut"
    mv "$out.cut" "$out"
  fi
  (
    flock 9
    { printf 'R %s %s ' "$id" "$rc"; base64 -w0 <"$out"; printf '\n'; } >&3
  ) 9>"$STATE/lock"
  rm -f "$out"
}

say "READY boot $BOOT_ID"
while IFS= read -r line <&3; do
  line=$(printf '%s' "$line" | tr -d '\r')
  case $line in
    "PING "*) say "READY ${line#PING } $BOOT_ID" ;;
    "C "*)
      rest=${line#C }
      id=${rest%% *}
      b64=${rest#* }
      [ "$b64" = "$rest" ] && b64=
      run_cmd "$id" "$b64" &
      ;;
    "") ;;
    *) say "E unknown $(printf '%s' "$line" | base64 -w0)" ;;
  esac
done
