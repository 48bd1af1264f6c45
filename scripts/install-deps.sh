#!/usr/bin/env bash
# Installs every Debian 12 package virtsnap needs to build, test and run.
# Idempotent: packages already present are skipped by apt; safe to run on every CI start.
set -euo pipefail

packages=(
  # build
  g++ meson ninja-build pkg-config
  libxml2-dev libxml2-utils libglib2.0-dev nlohmann-json3-dev
  libvirt-dev            # public headers only: flag values and error codes
  clang libclang-rt-14-dev  # libFuzzer targets
  # run
  qemu-system-x86 qemu-utils
  # test clients and schemas
  libvirt-clients python3-libvirt
  # test guest build
  cpio gzip
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
