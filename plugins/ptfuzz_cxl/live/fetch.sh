#!/usr/bin/env bash
# Fetch the live target's pieces from Debian's archive by package name, without touching the
# host's apt state: an apt configuration of our own (bookworm, bookworm-backports, trixie,
# trixie-backports), `apt-get download` and `dpkg -x` into the cache.
#
#   fetch.sh CACHE PACKAGE...      unpack each package into CACHE/root, record versions
#
# PACKAGE is NAME or NAME/SUITE (the newest version of that suite).  A NAME with a * in it is a
# pattern for names that carry a version, such as linux-image-6.12.*+deb13-amd64-unsigned: the
# newest matching name (sort -V) is fetched.
#
# Debian's newest kernel source (linux-source-7.x) is in trixie-backports and QEMU 10 in
# bookworm-backports; both are plain .debs, so nothing is installed on the host.
set -euo pipefail
cache=$1; shift
apt_dir=$cache/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/etc/preferences.d" "$cache/debs" "$cache/root"
cat > "$apt_dir/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
SRC
: > "$apt_dir/etc/sources.list.d.empty"
APT=(-o Dir::Etc::sourcelist="$apt_dir/etc/sources.list" -o Dir::Etc::sourceparts=/nonexistent
     -o Dir::Etc::preferencesparts="$apt_dir/etc/preferences.d"
     -o Dir::State::lists="$apt_dir/lists" -o Dir::Cache::archives="$apt_dir/archives"
     -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Get::List-Cleanup=0
     -o Acquire::Retries=3 -o APT::Sandbox::User=root)
stamp=$apt_dir/lists/.updated
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +720)" ]; then
  apt-get "${APT[@]}" -qq update
  touch "$stamp"
fi
resolve() {
  local name=${1%%/*} suite=
  [[ $1 == */* ]] && suite=/${1#*/}
  if [[ $name != *'*'* ]]; then echo "$1"; return; fi
  local found
  found=$(apt-cache "${APT[@]}" pkgnames "${name%%\**}" | while read -r n; do
            # shellcheck disable=SC2053  # $name is a glob on purpose
            if [[ $n == $name ]]; then echo "$n"; fi; done | sort -V | tail -n 1)
  if [ -z "$found" ]; then echo "fetch.sh: no package is called $name" >&2; return 1; fi
  echo "$found$suite"
}
cd "$cache/debs"
for spec in "$@"; do
  # PACKAGE or PACKAGE/SUITE (the newest version of that suite)
  pkg=$(resolve "$spec")
  apt-get "${APT[@]}" -qq download "$pkg"
done
for deb in "$cache"/debs/*.deb; do
  done_mark=$cache/root/.$(basename "$deb").unpacked
  [ -e "$done_mark" ] && continue
  dpkg -x "$deb" "$cache/root"
  touch "$done_mark"
done
ls "$cache"/debs
