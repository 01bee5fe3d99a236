#!/usr/bin/env bash
# Installs those of the Debian packages given as arguments that are not
# installed yet; runs apt-get update only when something is missing, so a
# machine that has everything needs no network. Run as root.
set -euo pipefail

missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
