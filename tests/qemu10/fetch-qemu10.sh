#!/usr/bin/env bash
# Fetches QEMU 10.0 from Debian's bookworm-backports into a private directory
# (never installed system-wide: the system keeps Debian 12's QEMU 7.2) and
# writes a wrapper that runs it with its own firmware directory.
#   fetch-qemu10.sh [CACHE_DIR]   -> prints the wrapper's path; exit 77 when unreachable
set -euo pipefail
cache=${1:-$(dirname "$0")/cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
# e2e tests run two at a time and each calls this: one builds, the other waits and
# finds the result cached.
exec 9>"$cache/.lock"
flock 9
wrapper="$cache/qemu-system-x86_64"
if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then echo "$wrapper"; exit 0; fi

apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$cache/debs"
chmod 777 "$cache/debs"
echo "deb http://deb.debian.org/debian bookworm-backports main" >"$apt_dir/sources.list"
opts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$apt_dir/lists"
      -o APT::Get::List-Cleanup=0)
if ! apt-get "${opts[@]}" update >"$cache/apt.log" 2>&1; then
  echo "bookworm-backports unreachable" >&2; exit 77
fi
(cd "$cache/debs" && apt-get "${opts[@]}" download qemu-system-x86/bookworm-backports \
   qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports >>"$cache/apt.log" 2>&1) \
   || { echo "cannot download QEMU 10 from bookworm-backports" >&2; exit 77; }
rm -rf "$cache/root"
for d in "$cache"/debs/*.deb; do dpkg -x "$d" "$cache/root"; done
cat >"$wrapper" <<WRAP
#!/bin/sh
# QEMU 10 from bookworm-backports, unpacked privately; -L points it at its own firmware.
exec "$cache/root/usr/bin/qemu-system-x86_64" -L "$cache/root/usr/share/qemu" -L /usr/share/seabios "\$@"
WRAP
chmod +x "$wrapper"
"$wrapper" --version >/dev/null
echo "$wrapper"
