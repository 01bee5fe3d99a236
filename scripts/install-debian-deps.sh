#!/usr/bin/env bash
# Installs the Debian packages podnet's tests, benchmarks and demo use, if
# missing. Run as root on Debian 12 (bookworm) or later.
set -euo pipefail

packages=(
  iproute2                   # ip, ss: test topologies and cross-checks
  containernetworking-plugins # the real CNI plugins, in /usr/lib/cni
  golang-github-containernetworking-plugin-dnsname # dnsname, in /usr/lib/cni: container DNS of `network create`
  dnsmasq-base               # the dnsmasq dnsname starts (-base: the binary, without a system service)
  iptables                   # used by the portmap and firewall plugins
  nftables                   # nft: the native driver's table, read back by the tests
  slirp4netns passt          # rootless networking engines (slirp4netns, pasta)
  uidmap                     # newuidmap/newgidmap for rootless tests
  util-linux mount procps    # nsenter, unshare, findmnt, umount, sysctl
  g++ make python3           # node-gyp builds the addon
  gcc libc6-dev              # and ns.spawn's exec helper, C linked statically (libc.a)
  libasan8 libubsan1         # sanitizer build of the addon (libgcc-N-dev, which g++ pulls, links them)
  binutils                   # nm: the sanitizer test checks that build carries the sanitizers
  zsh                        # the CLI test parses `podnet completion zsh` with zsh -n
)

bash "$(dirname "$0")/apt-install-missing.sh" "${packages[@]}"
