#!/bin/bash
# build-guest.sh - builds the test guest: Debian's cloud kernel plus an initramfs
# with busybox, the vsguest workload helper and qemu-guest-agent.
#
#   tests/guest/build-guest.sh [CACHE_DIR]      (default: tests/guest/cache)
#
# Produces CACHE_DIR/vmlinuz and CACHE_DIR/initramfs.img. Everything comes from
# Debian packages (apt-get download; no other network). The result is keyed by
# the package versions and the hash of this directory's sources, so a second run
# with nothing changed only prints the paths. Kernel command-line options the
# guest understands are documented in tests/guest/README.md.
#
# Exit status: 0 built (or cached), 77 when the Debian mirror is unreachable
# (callers skip), 1 on other failures.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-$here/cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
# e2e tests run two at a time and each calls this: one builds, the other waits and
# finds the result cached.
exec 9>"$cache/.lock"
flock 9

log() { echo "build-guest: $*" >&2; }

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# The kernel the cloud meta-package points at; else the newest one apt knows.
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}')
if [ -z "$kernel_pkg" ] || [ -z "$(candidate "$kernel_pkg")" ] || [ "$(candidate "$kernel_pkg")" = "(none)" ]; then
    kernel_pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-cloud-amd64$' |
        awk '{print $1}' | sort -V | tail -1)
fi
if [ -z "$kernel_pkg" ]; then
    log "no linux-image-*-cloud-amd64 package known to apt (run apt-get update)"
    exit 77
fi

base_pkgs="$kernel_pkg busybox-static qemu-guest-agent"
versions=""
for p in $base_pkgs; do versions+="$p=$(candidate "$p") "; done
src_hash=$(cat "$here/build-guest.sh" "$here/init" "$here/vsguest.c" | sha256sum | cut -c1-16)
key="$versions src=$src_hash"

if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$key" ] &&
    [ -f "$cache/vmlinuz" ] && [ -f "$cache/initramfs.img" ]; then
    log "cached: $cache ($key)"
    echo "$cache"
    exit 0
fi
log "building into $cache ($key)"

work=$(mktemp -d /tmp/vsguest-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
# apt-get download drops privileges to _apt, which must be able to write here.
mkdir -p "$work/debs"
chmod 0777 "$work/debs"
chmod 0755 "$work"

download() {
    (cd "$work/debs" && apt-get download "$@" >/dev/null 2>"$work/apt.err") || {
        log "apt-get download $* failed: $(tail -3 "$work/apt.err")"
        if grep -qiE 'resolve|connect|network|Temporary failure' "$work/apt.err"; then exit 77; fi
        exit 1
    }
}

download $base_pkgs
mkdir -p "$work/x"
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/x"; done

kver=${kernel_pkg#linux-image-}
cp "$work/x/boot/vmlinuz-$kver" "$work/vmlinuz"

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,mnt,etc,lib/modules,lib64,usr/bin,usr/lib/x86_64-linux-gnu}
cp "$work/x/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$here/init" "$root/init"
chmod 0755 "$root/init"
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/vsguest" "$here/vsguest.c"
# qemu-ga powers the guest off through shutdown(8); busybox's poweroff -f does it.
cat >"$root/sbin/shutdown" <<'EOF'
#!/bin/sh
sync
case " $* " in *" -r "*) exec reboot -f ;; *" -H "*) exec halt -f ;; *) exec poweroff -f ;; esac
EOF
chmod 0755 "$root/sbin/shutdown"

# Kernel modules the guest needs that this kernel does not build in, with their
# dependencies (from each module's .modinfo "depends=" entry; the package ships
# no modules.dep and depmod may be absent), in load order.
moddir="$work/x/lib/modules/$kver"
wanted="virtio_pci virtio_blk virtio_console virtio_scsi sd_mod sr_mod ata_piix ahci button evdev"
: >"$root/lib/modules/load.order"
declare -A modpath=() seen=()
while IFS= read -r f; do
    n=${f##*/}
    n=${n%%.ko*}
    modpath[${n//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko*')
module_file() {
    case "$1" in
    *.xz) xz -dc "$1" ;;
    *.zst) zstd -qdc "$1" ;;
    *) cat "$1" ;;
    esac
}
add_module() {
    local name=${1//-/_} path deps dep out
    path=${modpath[$name]:-}
    [ -n "$path" ] || return 0 # built in (or absent)
    [ -z "${seen[$name]:-}" ] || return 0
    seen[$name]=1
    deps=$(module_file "$path" | tr '\0' '\n' | grep -a '^depends=' | head -1 | cut -d= -f2 | tr ',' ' ')
    for dep in $deps; do add_module "$dep"; done
    out=$name.ko
    module_file "$path" >"$root/lib/modules/$out"
    echo "$out" >>"$root/lib/modules/load.order"
}
for m in $wanted; do add_module "$m"; done

# qemu-guest-agent and the shared libraries it links: found with ldd on the
# extracted binary, mapped to the Debian packages providing them on this host,
# and taken from those packages (downloaded, not copied from the host).
ga="$work/x/usr/sbin/qemu-ga"
cp "$ga" "$root/usr/bin/qemu-ga"
if ldd "$ga" | grep -q 'not found'; then
    log "this host cannot resolve qemu-ga's libraries: $(ldd "$ga" | grep 'not found' | tr '\n' ' ')"
    exit 1
fi
libs=$(ldd "$ga" | awk '/=>/ {print $3} /ld-linux/ && !/=>/ {print $1}' | sort -u)
lib_pkgs=""
for lib in $libs; do
    pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
        dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null || true)
    pkg=${pkg%%:*}
    if [ -z "$pkg" ]; then
        log "no Debian package provides $lib (needed by qemu-ga)"
        exit 1
    fi
    lib_pkgs+="$pkg "
done
lib_pkgs=$(echo "$lib_pkgs" | tr ' ' '\n' | sort -u | tr '\n' ' ')
for p in $lib_pkgs; do versions+="$p=$(candidate "$p") "; done
mkdir -p "$work/libs"
(cd "$work/debs" && rm -f ./*.deb)
download $lib_pkgs
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/libs"; done
for lib in $libs; do
    name=${lib##*/}
    src=$(find "$work/libs" -name "$name" \( -type f -o -type l \) | head -1)
    if [ -z "$src" ]; then
        log "$name not found in packages $lib_pkgs"
        exit 1
    fi
    cp -L "$src" "$root/usr/lib/x86_64-linux-gnu/$name"
done
ln -s ../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
ln -s ../usr/lib/x86_64-linux-gnu "$root/lib/x86_64-linux-gnu"
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -6 >"$work/initramfs.img"

cp "$work/vmlinuz" "$cache/vmlinuz.new"
cp "$work/initramfs.img" "$cache/initramfs.img.new"
mv "$cache/vmlinuz.new" "$cache/vmlinuz"
mv "$cache/initramfs.img.new" "$cache/initramfs.img"
echo "$key" >"$cache/stamp"
echo "$versions" >"$cache/packages"
cp "$root/lib/modules/load.order" "$cache/modules"
log "built $(du -h "$cache/initramfs.img" | cut -f1) initramfs, kernel $kver, modules: $(tr '\n' ' ' <"$cache/modules")"
echo "$cache"
