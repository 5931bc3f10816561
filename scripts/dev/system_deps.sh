#!/usr/bin/env bash
# The Debian packages the end-to-end tests drive for real: a browser and its driver (the chat page),
# a container engine (the image), and a load balancer (replicas). Installs what is missing when it
# can (root with apt-get); otherwise names what to install and fails, so `make test` never skips them.
set -euo pipefail
PACKAGES=(chromium chromium-driver podman runc mmdebstrap haproxy)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "make test needs these Debian packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q "${missing[@]}" >/dev/null
