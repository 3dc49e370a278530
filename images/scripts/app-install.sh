#!/bin/bash
# Installs the project's package and the lab agent into the client image. Runs inside
# `systemd-nspawn -D <overlay of the base root>` (not booted); /provision-in/pershome.deb.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# as an admin would: dpkg runs the maintainer scripts (postinst: pam-auth-update --package)
dpkg -i /provision-in/pershome.deb
pershome --version
grep -q pershome /var/lib/pam/seen
# the harness's control channel (not part of the product)
install -d /usr/lib/pershome-lab
install -m 0755 /provision/agent/agent.cjs /usr/lib/pershome-lab/agent
install -m 0644 /provision/agent/pershome-lab-agent.service /etc/systemd/system/pershome-lab-agent.service
systemctl enable pershome-lab-agent.service
