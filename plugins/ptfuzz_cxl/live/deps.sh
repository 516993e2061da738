#!/usr/bin/env bash
# The host tools a kernel build and the guest agent need, from Debian's packages (root only; a no-op
# when they are there).  QEMU, busybox and the kernel source are not installed: fetch.sh unpacks them
# into the cache.
set -euo pipefail
need=()
for pkg in gcc make flex bison bc libelf-dev libssl-dev xz-utils libc6-dev patch; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "ptfuzz live: missing build tools: ${need[*]} (apt-get install them as root)" >&2
  exit 2
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
