#!/bin/bash
# Provisions the client base root (base.squashfs). Runs inside `systemd-nspawn -D <root>` (not
# booted), images/ bound read-only at /provision, the build's inputs at /provision-in:
#   nodejs.deb (the host's Node 20 repacked), modules/ (pruned /lib/modules/<version>), kver.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# a lab client needs no manuals, docs or translations (as in Debian's container images)
cat > /etc/dpkg/dpkg.cfg.d/01-lab-nodoc <<'X'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
X
apt-get update -q
apt-get install -y -q --no-install-recommends $(grep -v '^#' /provision/scripts/base-packages)
# Node 20: the host's nodesource package, repacked from its installed files (Debian 12 has 18)
apt-get install -y -q --no-install-recommends /provision-in/nodejs.deb
apt-get clean
rm -rf /var/lib/apt/lists/*

# the kernel's modules (the kernel itself comes over the network)
kver=$(cat /provision-in/kver)
mkdir -p /lib/modules
cp -a /provision-in/modules "/lib/modules/$kver"
depmod -a "$kver"

# No user accounts here: as on an LTSP client they come from the server at boot (ltsp.img,
# merged by LTSP's own init: pwmerge), and logins authenticate against the server (pamltsp).

# network: the initramfs got an address by DHCP and configured eth0; nothing touches it after
# switch_root (no networkd, no ifupdown: under TCG networkd took ~20 s to start). The initramfs
# also writes /etc/systemd/network/10-eth0.network with the lease, should networkd be enabled.
systemctl disable systemd-networkd.service systemd-networkd.socket 2>/dev/null || true
# boot to a settled system fast under TCG: no timers, no waiting for what a lab client lacks
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer man-db.timer dpkg-db-backup.timer systemd-timesyncd.service \
  systemd-networkd-wait-online.service getty@tty1.service serial-getty@ttyS1.service \
  systemd-pstore.service systemd-hwdb-update.service ldconfig.service \
  systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
  getty-static.service dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
  systemd-update-utmp-runlevel.service systemd-journal-flush.service
systemctl set-default multi-user.target
# the machine-id is made at boot (the root is a tmpfs overlay)
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
# ssh with passwords, as on a lab machine
sed -i 's/^#\?PasswordAuthentication.*/PasswordAuthentication yes/' /etc/ssh/sshd_config
echo lab-client > /etc/hostname
printf 'LANG=C.UTF-8\n' > /etc/default/locale
