#!/bin/sh
# /init of the lab client's initramfs (images/initrd/init.sh): DHCP, fetch base.squashfs and
# app.squashfs over HTTP into a tmpfs, mount them as overlay lowers (app over base) under a tmpfs
# upper, hand over to systemd. Every step is logged with a timestamp on the console; any failure
# prints "LAB-INITRD FAILED: ..." and powers off (lab.shell on the cmdline: a shell instead).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

log() { echo "[lab-initrd $(cut -d' ' -f1 /proc/uptime)] $*" >/dev/console; }
fail() {
  log "LAB-INITRD FAILED: $*"
  if grep -qw lab.shell /proc/cmdline; then
    log "dropping to a shell (exit to power off)"
    setsid cttyhack sh
  fi
  log "powering off"
  sleep 1
  poweroff -f
}

BASE_URL= APP_URL= 
for arg in $(cat /proc/cmdline); do
  case $arg in
    lab.base=*) BASE_URL=${arg#lab.base=} ;;
    lab.app=*) APP_URL=${arg#lab.app=} ;;
  esac
done
[ -n "$BASE_URL" ] && [ -n "$APP_URL" ] || fail "lab.base= and lab.app= missing from the kernel command line"
log "start: $(uname -r)"

while read -r mod params; do
  [ -n "$mod" ] || continue
  insmod "/lib/modules/$mod" $params 2>/dev/null || grep -q "^$(basename "$mod" .ko | tr - _) " /proc/modules || fail "insmod $mod"
done </etc/lab-modules
log "modules loaded"

ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "no eth0 (e1000 not found?)"
  sleep 0.1
done
ip link set eth0 up
udhcpc -i eth0 -s /udhcpc.script -q -f -n -t 10 -T 2 >/dev/console 2>&1 || fail "no DHCP lease on eth0"
. /run/lease
log "eth0 $ip/$mask router ${router:-none}"

mkdir -p /lab/img /lab/base /lab/app /lab/rw /newroot
mount -t tmpfs -o mode=0755 labimg /lab/img || fail "tmpfs for the images"
for part in base app; do
  eval url=\$$(echo "$part" | tr a-z A-Z)_URL
  log "fetching $url"
  wget -q -O "/lab/img/$part.squashfs" "$url" || fail "wget $url"
  log "$part.squashfs: $(stat -c %s "/lab/img/$part.squashfs") bytes"
  mount -t squashfs -o ro,loop "/lab/img/$part.squashfs" "/lab/$part" || fail "mount $part.squashfs"
done
mount -t tmpfs -o mode=0755 labrw /lab/rw || fail "tmpfs for the root's upper layer"
mkdir -p /lab/rw/upper /lab/rw/work
mount -t overlay -o lowerdir=/lab/app:/lab/base,upperdir=/lab/rw/upper,workdir=/lab/rw/work root /newroot \
  || fail "overlay root"
log "root: overlay of app.squashfs over base.squashfs, tmpfs upper"

# hand the DHCP lease on to systemd-networkd (static, so there is no second DHCP exchange)
mac=$(cat /sys/class/net/eth0/address)
host=client-$(echo "$mac" | cut -d: -f6)
mkdir -p /newroot/etc/systemd/network
{
  echo "[Match]"
  echo "MACAddress=$mac"
  echo "[Network]"
  echo "Address=$ip/$mask"
  [ -n "${router:-}" ] && echo "Gateway=${router%% *}"
  for d in ${dns:-}; do echo "DNS=$d"; done
  echo "LinkLocalAddressing=no"
  echo "IPv6AcceptRA=no"
  echo "KeepConfiguration=yes"
} >/newroot/etc/systemd/network/10-eth0.network
echo "$host" >/newroot/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n10.77.0.1 ltsp-server server\n' "$host" >/newroot/etc/hosts

# keep the image mounts reachable after switch_root: under /run, which systemd keeps
mount -t tmpfs -o mode=0755,nosuid,nodev run /newroot/run || fail "tmpfs /run"
mkdir -p /newroot/run/lab/img /newroot/run/lab/base /newroot/run/lab/app /newroot/run/lab/rw
for m in img base app rw; do mount --move /lab/$m /newroot/run/lab/$m || fail "move /lab/$m"; done
[ -x /newroot/sbin/init ] || [ -L /newroot/sbin/init ] || fail "no /sbin/init in the image"

# ltsp.img (the second initrd boot.ipxe loads, made by `ltsp initrd` on the server) was unpacked
# by the kernel next to this script: LTSP's client code, ltsp.conf and the server's users. As
# LTSP's own initramfs does, put them in the root and let LTSP's init run first: it merges the
# users (pwmerge), installs pamltsp, applies ltsp.conf, then hands over to systemd.
init=/sbin/init
if [ -x /usr/share/ltsp/client/init/init ] && [ -f /etc/ltsp/ltsp.conf ]; then
  mkdir -p /newroot/etc/ltsp /newroot/usr/share/ltsp
  cp -a /etc/ltsp/. /newroot/etc/ltsp/ || fail "copying ltsp.img's /etc/ltsp"
  cp -a /usr/share/ltsp/. /newroot/usr/share/ltsp/ || fail "copying ltsp.img's /usr/share/ltsp"
  init=/usr/share/ltsp/client/init/init
  log "ltsp.img: $(grep -c . /etc/ltsp/passwd) accounts from the server; LTSP's init runs first"
else
  log "no ltsp.img (boot.ipxe did not load it): systemd directly, no LTSP users"
fi
# the PATH a distribution's initramfs hands on (LTSP's init calls pam-auth-update, sbin tools)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
log "switch_root to $init"
umount /proc /sys 2>/dev/null
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot "$init"
