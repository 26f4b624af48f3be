#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages pgan needs to build and test: the hwloc, zlib, libpng and libjpeg-turbo
# (TurboJPEG) development files and pkg-config (Swift itself must already be installed). scripts/quickstart.sh and .ci/run both call this one script,
# so CI never has more than a user who followed the README.
#   --mpi  also Open MPI (libopenmpi-dev, openmpi-bin), for `swift build --traits MPI` and mpirun (README, "Clusters")
set -euo pipefail
packages=(libhwloc-dev zlib1g-dev libpng-dev libturbojpeg0-dev pkg-config)
case "${1:-}" in
    "") ;;
    --mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    *) echo "usage: $0 [--mpi]" >&2; exit 2 ;;
esac
missing=()
for package in "${packages[@]}"; do
    # Installed means "install ok installed": a removed package keeps a dpkg entry (config files) that dpkg -s accepts.
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]}"
sudo_command=()
[ "$(id -u)" -eq 0 ] || sudo_command=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_command[@]}" apt-get update -qq
"${sudo_command[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
