#!/usr/bin/env bash
# Installs the Debian packages podnet's tests, benchmarks and demo use, if
# missing. Run as root on Debian 12 (bookworm) or later.
set -euo pipefail

packages=(
  iproute2                   # ip, ss: test topologies and cross-checks
  containernetworking-plugins # the real CNI plugins, in /usr/lib/cni
  iptables                   # used by the portmap and firewall plugins
  slirp4netns passt          # rootless networking engines (slirp4netns, pasta)
  uidmap                     # newuidmap/newgidmap for rootless tests
  util-linux mount procps    # nsenter, unshare, findmnt, umount, sysctl
  g++ make python3           # node-gyp builds the addon
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
