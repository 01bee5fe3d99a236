#!/usr/bin/env bash
# Installs the Debian packages podnet's benchmarks (bench/) use, if missing.
# Run as root on Debian 12 (bookworm) or later. The build and test
# dependencies come from scripts/install-debian-deps.sh.
set -euo pipefail

packages=(
  iperf3                      # throughput columns of bench/forward.js
  rootlesskit                 # the builtin port driver anchor (rootlesskit 1.1)
  socat                       # the socat fork anchor
  slirp4netns                 # the add_hostfwd anchor (and rootlesskit's --net)
  containernetworking-plugins # kernel DNAT through CNI's portmap
  iptables                    # used by the portmap plugin
  netavark                    # podman's own network driver, the native driver's anchor
  iproute2                    # ip, ss
  util-linux procps           # nsenter, umount, findmnt; ps
  gcc libc6-dev               # bench/c/*.c (cc -O2)
)

# The bench starts its own iperf3 servers inside its namespaces: no daemon.
echo 'iperf3 iperf3/start_daemon boolean false' | debconf-set-selections
bash "$(dirname "$0")/apt-install-missing.sh" "${packages[@]}"
