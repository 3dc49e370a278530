#!/bin/busybox sh
# pershome micro-VM init: PID 1 inside the guest, baked into the initramfs by
# lab/microvm/initramfs.ts (@NAME@ placeholders are filled in from lab/microvm/guest-init.ts).
#
# Loads the modules listed in /etc/microvm/modules (group, path, insmod arguments), opens the output port (a virtio-serial port
# streamed to the host), reads its job from the 9p share tagged @JOB_TAG@ (config.sh: NONCE,
# MSIZE, STICKS, SHARES...; job.sh: cd + env + sh -c COMMAND), builds the root (host / over 9p,
# read-only, with a tmpfs overlay), mounts the shares, waits for the sticks, then runs job.sh
# chrooted, as root, with stdout+stderr on the port. Markers on the port (protocol.ts) tell the
# host when the command starts and how it ended; the host acknowledges the end marker, and the
# guest powers off. This file is part of the initramfs cache key.
/bin/busybox mkdir -p /proc /sys /dev /tmp /lower /ovl /newroot /job /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

NONCE=
PORT=
log() { read -r _up _ < /proc/uptime; echo "[$_up] microvm-init: $*"; }
log "started"
# fail MESSAGE: report on the console and, once the job is known, on the output port; power off.
fail() {
  log "FATAL: $*"
  if [ -n "$PORT" ] && [ -n "$NONCE" ]; then
    printf 'microvm-init: %s\n\001pershome-initfail:%s\n' "$*" "$NONCE" >&3
    read -t 10 _ack <&3
  fi
  poweroff -n -f
  sleep 10
}
# wait_until TENTHS COMMAND...: poll COMMAND every 0.1 s, at most TENTHS times.
wait_until() {
  _n=$1; shift
  while ! "$@"; do
    _n=$((_n - 1))
    [ "$_n" -le 0 ] && return 1
    sleep 0.1
  done
}

KVER=$(uname -r)
# load_group GROUP: insmod the modules of GROUP, in the order listed (dependencies first).
load_group() {
  while read -r group mod args; do
    [ "$group" = "$1" ] || continue
    insmod "/lib/modules/$KVER/$mod" $args || log "insmod $mod failed"
  done < /etc/microvm/modules
}
load_group core
log "core modules loaded"

# The output port appears once the host's virtio-serial control messages arrive.
find_port() {
  for d in /sys/class/virtio-ports/*; do
    if [ "$(cat "$d/name" 2>/dev/null)" = "@OUTPUT_PORT_NAME@" ] && [ -c "/dev/${d##*/}" ]; then
      PORT=/dev/${d##*/}
      return 0
    fi
  done
  return 1
}
wait_until 100 find_port || fail "output port @OUTPUT_PORT_NAME@ did not appear"
exec 3<>"$PORT"

mount_job() { mount -t 9p -o trans=virtio,version=9p2000.L,ro @JOB_TAG@ /job 2>/dev/null; }
wait_until 50 mount_job || fail "cannot mount the job share"
. /job/config.sh || fail "bad /job/config.sh"
log "job share mounted"

# USB (if sticks are plugged) and filesystem modules load in the background while the root is
# being mounted; USB enumeration itself is asynchronous in the kernel anyway.
( [ "$STICKS" -gt 0 ] && load_group usb; load_group fs ) &
MODLOADER=$!

# Root: the host's / (read-only, 9p) under a tmpfs overlay.
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$MSIZE,cache=loose,ro" @ROOT_TAG@ /lower || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 overlay-upper /ovl || fail "tmpfs"
mkdir -p /ovl/upper /ovl/work
mount -t overlay -o lowerdir=/lower,upperdir=/ovl/upper,workdir=/ovl/work overlay /newroot || fail "cannot mount the overlay root"
R=/newroot
mkdir -p $R/proc $R/sys $R/dev $R/tmp $R/run $R/root
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t tmpfs -o mode=0755 run $R/run
[ -d /sys/fs/fuse/connections ] && mount -t fusectl fusectl $R/sys/fs/fuse/connections 2>/dev/null
ln -sf /proc/self/mounts $R/etc/mtab 2>/dev/null
# Modules the kernel asks for later come from the host's full /lib/modules, via the host's modprobe.
if [ -L $R/sbin/modprobe ] || [ -e $R/sbin/modprobe ]; then
  printf '#!/bin/sh\nexec chroot %s /sbin/modprobe "$@"\n' "$R" > /sbin/microvm-modprobe
  chmod 755 /sbin/microvm-modprobe
  echo /sbin/microvm-modprobe > /proc/sys/kernel/modprobe
fi
hostname "$GUEST_HOSTNAME"
log "root mounted"

i=0
while [ "$i" -lt "$SHARES" ]; do
  eval "tag=\$SHARE_${i}_TAG; path=\$SHARE_${i}_PATH; opts=\$SHARE_${i}_OPTS"
  mkdir -p "$R$path"
  mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$MSIZE,$opts" "$tag" "$R$path" || fail "cannot mount share $tag at $path"
  i=$((i + 1))
done

wait $MODLOADER
log "all modules loaded"

# Sticks: wait for STICKS SCSI disks with a size, then name them /dev/stickN by their USB serial.
count_disks() {
  _c=0
  for b in /sys/block/sd*; do
    [ -e "$b/size" ] && [ "$(cat "$b/size")" != 0 ] && [ -b "/dev/${b##*/}" ] && _c=$((_c + 1))
  done
  [ "$_c" -ge "$STICKS" ]
}
if [ "$STICKS" -gt 0 ]; then
  wait_until "$STICK_WAIT_TENTHS" count_disks || fail "expected $STICKS stick(s), found: $(ls /sys/block | tr '\n' ' ')"
  for b in /sys/block/sd*; do
    d=${b##*/}
    p=$(readlink -f "$b/device")
    while [ "$p" != / ] && [ -n "$p" ] && ! [ -f "$p/idVendor" ]; do p=${p%/*}; done
    serial=$(cat "$p/serial" 2>/dev/null)
    case "$serial" in
      pershome-stick*) ln -sf "$d" "/dev/stick${serial#pershome-stick}" ;;
    esac
  done
  i=0
  for letter in a b c d e f g h i j k l m n o p; do
    [ "$i" -ge "$STICKS" ] && break
    [ "$(readlink /dev/stick$i)" = "sd$letter" ] || log "warning: /dev/stick$i is $(readlink /dev/stick$i), not sd$letter"
    i=$((i + 1))
  done
fi

log "starting the command"
mkdir -p $R/run/microvm
cp /job/job.sh $R/run/microvm/job.sh
up=$(cut -d' ' -f1 /proc/uptime)
printf '\001pershome-start:%s:%s\n' "$NONCE" "$up" >&3
chroot $R /bin/sh /run/microvm/job.sh </dev/null >&3 2>&3 3>&-
rc=$?
# No sync here on purpose: the end of the command is like pulling the sticks out. What the command
# did not sync or unmount is lost, as it would be on a real machine.
printf '\001pershome-exit:%s:%s\n' "$NONCE" "$rc" >&3
read -t 10 _ack <&3
poweroff -n -f
sleep 10
