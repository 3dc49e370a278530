#!/bin/bash
# Provisions the LTSP server root. Runs inside `systemd-nspawn -D <root>` (not booted), with
# images/ bound read-only at /provision. Network: the host's (apt only).
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
apt-get update -q
apt-get install -y -q --no-install-recommends \
  ltsp dnsmasq ipxe busybox openssh-server openssh-client sshpass iproute2 systemd-sysv \
  squashfs-tools
apt-get clean
rm -rf /var/lib/apt/lists/*

# dnsmasq: DHCP + TFTP on the lab bridge, iPXE chainloads boot.ipxe over HTTP
install -m 0644 /provision/server/lab-dnsmasq.conf /etc/dnsmasq.d/lab.conf
mkdir -p /srv/tftp /srv/http/boot
cp /usr/lib/ipxe/undionly.kpxe /srv/tftp/
# busybox httpd on 10.77.0.1:80 serving /srv/http (the harness bind-mounts the boot files at /srv/http/boot)
install -m 0644 /provision/server/busybox-httpd.service /etc/systemd/system/busybox-httpd.service
install -m 0644 /provision/server/lab-ipv6.service /etc/systemd/system/lab-ipv6.service
systemctl enable busybox-httpd.service dnsmasq.service ssh.service lab-ipv6.service

# what fails or only costs time in a container: ltsp.service wants a MAC_ADDRESS it cannot have in
# nspawn (it is the client-side service anyway); timers; getty on a console nobody reads
systemctl mask ltsp.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  fstrim.timer man-db.timer e2scrub_reap.service systemd-timesyncd.service console-getty.service
echo ltsp-server > /etc/hostname
printf '127.0.0.1 localhost\n10.77.0.1 ltsp-server server\n' > /etc/hosts

bash /provision/scripts/add-users.sh

# LTSP's own configuration and ltsp.img (users, groups, ltsp.conf for the clients). `ltsp initrd`
# works in a container; `ltsp kernel`, `ltsp nfs` do not (no loop mounts, no nfsd): see docs/lab-images.md.
install -d /etc/ltsp
install -m 0644 /provision/server/ltsp.conf /etc/ltsp/ltsp.conf
install -m 0644 /provision/server/persistent_homes /etc/ltsp/persistent_homes
ltsp initrd || echo "server-provision: ltsp initrd failed (continuing)" >&2
ls -la /srv/tftp/ltsp 2>/dev/null || true
