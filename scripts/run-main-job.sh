#!/usr/bin/env bash
# The main job, from a fresh Debian 12 clone: installs the dependencies, builds
# virtsnap and the test guest, starts virtsnapd on an embedded root, and uses
# stock virsh to define the guest, boot it, take a snapshot and show it.
#
#   scripts/run-main-job.sh [ROOT]     (default ROOT: a new temporary directory)
#
# The daemon and the guest are stopped at the end unless KEEP_RUNNING=1.
# BUILD_DIR (default: build) names the meson build directory to use.
# Every step that can time out fails the job with a message and a non-zero exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${BUILD_DIR:-build}

die() {
  echo "run-main-job: FAILED: $*" >&2
  exit 1
}

bash scripts/install-deps.sh
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" src/daemon/virtsnapd src/qemu/virtsnap-relay tools/virtsnap-xml >/dev/null
bash tests/guest/build-guest.sh tests/guest/cache

root=${1:-$(mktemp -d /tmp/virtsnap-main-XXXXXX)}
mkdir -p "$root/images"
uri="qemu+unix:///system?socket=$root/run/virtsnapd-sock"
virsh() { command virsh -c "$uri" "$@"; }

echo "== virtsnapd --root $root"
VIRTSNAP_KVM=0 "$build/src/daemon/virtsnapd" --root "$root" >"$root/virtsnapd.log" 2>&1 &
daemon=$!
cleanup() {
  if [ "${KEEP_RUNNING:-0}" != 1 ]; then
    virsh destroy demo >/dev/null 2>&1 || true
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  else
    echo "left running: virsh -c '$uri' ..."
  fi
}
trap cleanup EXIT
# The socket file exists before the daemon accepts: wait until a client gets an answer,
# from this daemon (the pid file names it) and not another one on the same root.
ready=0
for _ in $(seq 300); do
  kill -0 "$daemon" 2>/dev/null || break
  if [ "$(cat "$root/run/virtsnapd.pid" 2>/dev/null)" = "$daemon" ] && [ -S "$root/run/virtsnapd-sock" ] &&
    virsh uri >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  tail -n 20 "$root/virtsnapd.log" >&2 || true
  if kill -0 "$daemon" 2>/dev/null; then
    die "virtsnapd did not answer on $root/run/virtsnapd-sock within 30 s (log above)"
  fi
  die "virtsnapd exited during start-up (log above)"
fi

qemu-img create -q -f qcow2 "$root/images/demo.qcow2" 64M
cat >"$root/demo.xml" <<XML
<domain type='qemu'>
  <name>demo</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$top/tests/guest/cache/vmlinuz</kernel>
    <initrd>$top/tests/guest/cache/initramfs.img</initrd>
    <cmdline>console=ttyS0 quiet vs.heartbeat=50 vs.counter=/dev/vda</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$root/images/demo.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='$root/demo.serial'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
XML

set -x
virsh version
virsh define "$root/demo.xml"
virsh start demo
{ set +x; } 2>/dev/null
booted=0
for _ in $(seq 900); do
  if grep -q "VSGUEST ready" "$root/demo.serial" 2>/dev/null; then booted=1; break; fi
  sleep 0.2
done
if [ "$booted" != 1 ]; then
  tail -n 20 "$root/demo.serial" >&2 2>/dev/null || true
  tail -n 20 "$root/log/qemu/demo.log" >&2 2>/dev/null || true
  die "the guest did not report 'VSGUEST ready' on its serial console within 180 s (serial and QEMU log above)"
fi
set -x
virsh list --all
virsh dominfo demo
virsh snapshot-create-as demo snap1 --description "taken by stock virsh"
virsh snapshot-list demo
virsh snapshot-info demo snap1
# sed reads to the end: head would make virsh die of SIGPIPE and fail the job (pipefail).
virsh snapshot-dumpxml demo snap1 | sed -n 1,20p
qemu-img snapshot -l "$root/images/demo.qcow2" -U
tail -n 3 "$root/demo.serial"
{ set +x; } 2>/dev/null

echo "== what the main job did, as stock virsh sees it"
virsh list --all
virsh snapshot-list demo
[ "$(virsh domstate demo)" = running ] || die "the guest is not running at the end"
virsh snapshot-info demo snap1 >/dev/null || die "snapshot snap1 is missing"
echo "run-main-job: OK (root $root)"
