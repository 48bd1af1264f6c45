#!/bin/sh
# bench/setup.sh - prepares this machine for the side-by-side benchmarks (idempotent).
#
#  1. installs QEMU, python3-libvirt, virsh and libvirtd (libvirt-daemon-system) from Debian;
#  2. configures libvirtd's QEMU driver to run QEMU as root (docs: /work/shared/notes/machine-facts.md)
#     and starts virtlogd + libvirtd (no systemd here: `libvirtd -d`) unless already running;
#  3. builds virtsnapd in build-bench/ (never touches build/).
#
# Exit status 0 when virtsnapd is built; libvirtd problems only print "SKIP libvirtd: ..."
# (the benchmarks then measure virtsnapd alone and say so). Run as root.
#
#   bench/setup.sh [--no-libvirtd] [--no-build]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${VIRTSNAP_BENCH_BUILD:-$SRC/build-bench}
want_libvirtd=1
want_build=1
for a in "$@"; do
    case "$a" in
        --no-libvirtd) want_libvirtd=0 ;;
        --no-build) want_build=0 ;;
        *) echo "usage: $0 [--no-libvirtd] [--no-build]" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" != 0 ]; then
    echo "bench/setup.sh: must run as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
missing=""
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || missing="$missing $1"; }
for p in qemu-system-x86 qemu-utils python3-libvirt libvirt-clients meson ninja-build g++ pkg-config cpio; do need "$p"; done
[ "$want_libvirtd" = 1 ] && need libvirt-daemon-system
if [ -n "$missing" ]; then
    echo "installing:$missing"
    if ! apt-get install -y --no-install-recommends $missing >/tmp/bench-setup-apt.log 2>&1; then
        apt-get update >/dev/null 2>&1
        apt-get install -y --no-install-recommends $missing >/tmp/bench-setup-apt.log 2>&1 ||
            echo "apt-get install failed (see /tmp/bench-setup-apt.log)"
    fi
fi

libvirtd_running() {
    [ -s /run/libvirtd.pid ] && kill -0 "$(cat /run/libvirtd.pid)" 2>/dev/null
}

if [ "$want_libvirtd" = 1 ]; then
    if ! command -v libvirtd >/dev/null 2>&1; then
        echo "SKIP libvirtd: not installable here"
    else
        conf=/etc/libvirt/qemu.conf
        changed=0
        grep -q '^user = "root"' "$conf" || { echo 'user = "root"' >>"$conf"; changed=1; }
        grep -q '^group = "root"' "$conf" || { echo 'group = "root"' >>"$conf"; changed=1; }
        if ! pgrep -x virtlogd >/dev/null 2>&1; then
            virtlogd -d || echo "warning: virtlogd did not start"
        fi
        if libvirtd_running && [ "$changed" = 1 ]; then
            echo "restarting libvirtd for the new qemu.conf"
            pid=$(cat /run/libvirtd.pid)
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        if ! libvirtd_running; then
            libvirtd -d || echo "warning: libvirtd -d failed"
        fi
        ok=0
        for _ in $(seq 100); do
            if virsh -c qemu:///system uri >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.2
        done
        if [ "$ok" = 1 ]; then
            echo "libvirtd: $(virsh -c qemu:///system version 2>/dev/null | grep -i 'running hypervisor\|library' | tr '\n' ' ')"
        else
            echo "SKIP libvirtd: qemu:///system does not answer"
        fi
    fi
fi

if [ "$want_build" = 1 ]; then
    cd "$SRC" || exit 1
    [ -d "$BUILD" ] || meson setup "$BUILD" >/tmp/bench-setup-meson.log 2>&1 || { cat /tmp/bench-setup-meson.log; exit 1; }
    nice ninja -C "$BUILD" -j2 src/daemon/virtsnapd src/qemu/virtsnap-relay >/tmp/bench-setup-ninja.log 2>&1 || { tail -30 /tmp/bench-setup-ninja.log; exit 1; }
    echo "virtsnapd: $BUILD/src/daemon/virtsnapd"
fi
exit 0
