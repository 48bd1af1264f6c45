#!/usr/bin/python3
"""guestboottest - boots the test guest under TCG with a plain QEMU command line
and checks its workloads: serial heartbeats, the disk counter (read back with
tests/guest/read-counter), RAM fill, and qemu-guest-agent answering guest-ping
over its virtio-serial channel. Skips (TAP) when the guest cannot be built.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("VIRTSNAP_TEST_SRCDIR", os.path.dirname(os.path.abspath(__file__)))
GUEST = os.path.join(SRC, "guest")
count = 0
failed = 0


def ok(cond, name, diag=""):
    global count, failed
    count += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", count, name))
    if not cond:
        failed += 1
        for line in str(diag).splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return cond


def skip_all(reason):
    print("1..0 # SKIP " + reason)
    sys.exit(0)


def agent_command(path, command, timeout=30):
    """One QGA exchange; guest-sync-delimited first so stale bytes are skipped."""
    deadline = time.time() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    s.settimeout(2)
    buf = b""
    sync_id = 424242
    while time.time() < deadline:
        s.sendall(json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}).encode())
        try:
            buf += s.recv(4096)
        except socket.timeout:
            continue
        if b'"return": %d' % sync_id in buf or b'"return":%d' % sync_id in buf:
            break
    s.settimeout(max(1, deadline - time.time()))
    s.sendall(json.dumps({"execute": command}).encode())
    buf = b""
    while b"\n" not in buf:
        buf += s.recv(4096)
    s.close()
    return json.loads(buf.split(b"\n")[0].lstrip(b"\xff"))


class Qmp:
    """Minimal QMP client: enough to pause and resume the guest around reads."""

    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.file = self.sock.makefile("rb")
        json.loads(self.file.readline())  # greeting
        self.command("qmp_capabilities")

    def command(self, name):
        self.sock.sendall(json.dumps({"execute": name}).encode() + b"\n")
        while True:
            msg = json.loads(self.file.readline())
            if "event" not in msg:
                return msg


def main():
    cache = os.environ.get("VIRTSNAP_GUEST_CACHE", os.path.join(GUEST, "cache"))
    build = subprocess.run([os.path.join(GUEST, "build-guest.sh"), cache], capture_output=True, text=True)
    if build.returncode == 77:
        skip_all("test guest cannot be built (Debian mirror unreachable): " + build.stderr.strip()[-200:])
    if build.returncode != 0:
        ok(False, "build-guest.sh builds the guest", build.stderr)
        print("1..%d" % count)
        return 1
    ok(True, "build-guest.sh builds the guest")

    tmp = tempfile.mkdtemp(prefix="guestboottest-")
    disk = os.path.join(tmp, "counter.raw")
    data = os.path.join(tmp, "data.raw")
    serial = os.path.join(tmp, "serial.log")
    ga = os.path.join(tmp, "ga.sock")
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    with open(data, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", data], check=True)

    argv = [
        "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "320", "-nodefaults", "-no-user-config",
        "-display", "none", "-kernel", os.path.join(cache, "vmlinuz"),
        "-initrd", os.path.join(cache, "initramfs.img"),
        "-append", "console=ttyS0 quiet vs.heartbeat=5 vs.counter=/dev/vda vs.counter_ms=10 "
                   "vs.fill=32 vs.mount=/dev/vdb:/mnt/data vs.agent=1",
        "-chardev", "file,id=serial0,path=" + serial, "-serial", "chardev:serial0",
        "-blockdev", "driver=file,filename=%s,node-name=s0" % disk,
        "-blockdev", "driver=raw,file=s0,node-name=f0",
        "-device", "virtio-blk-pci,drive=f0",
        "-blockdev", "driver=file,filename=%s,node-name=s1" % data,
        "-blockdev", "driver=raw,file=s1,node-name=f1",
        "-device", "virtio-blk-pci,drive=f1",
        "-device", "virtio-serial-pci",
        "-chardev", "socket,id=ga0,path=%s,server=on,wait=off" % ga,
        "-device", "virtserialport,chardev=ga0,name=org.qemu.guest_agent.0",
        "-chardev", "socket,id=mon0,path=%s,server=on,wait=off" % os.path.join(tmp, "qmp.sock"),
        "-mon", "chardev=mon0,mode=control",
    ]
    start = time.time()
    qemu = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = None
        while time.time() - start < 60 and qemu.poll() is None:
            text = open(serial, errors="replace").read() if os.path.exists(serial) else ""
            if "VSGUEST ready" in text:
                ready = time.time() - start
                break
            time.sleep(0.1)
        ok(ready is not None, "guest boots to ready", open(serial, errors="replace").read()[-2000:]
           if os.path.exists(serial) else "no serial output")
        if ready is not None:
            print("# boot to ready under TCG: %.2f s" % ready)
        time.sleep(2)

        reply = agent_command(ga, "guest-ping")
        ok(reply == {"return": {}}, "qemu-guest-agent answers guest-ping", reply)
        fs = agent_command(ga, "guest-get-fsinfo")
        mounts = [m.get("mountpoint") for m in fs.get("return", [])]
        ok("/mnt/data" in mounts, "agent sees the mounted ext4 filesystem", fs)
        frozen = agent_command(ga, "guest-fsfreeze-freeze")
        ok(frozen.get("return", 0) >= 1, "agent freezes the ext4 filesystem", frozen)
        thawed = agent_command(ga, "guest-fsfreeze-thaw")
        ok(thawed.get("return", 0) >= 1, "agent thaws it", thawed)

        text = open(serial, errors="replace").read()
        beats = [l for l in text.splitlines() if l.startswith("VSHB ")]
        ok(len(beats) >= 20, "heartbeat lines on the serial console", "%d lines" % len(beats))
        seqs = [int(l.split()[1]) for l in beats if len(l.split()) >= 4]
        ok(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "heartbeat sequence increases")
        ok("VSFILL done 32 MiB" in text, "RAM fill completed")

        # A live image changes while it is read: pause the guest around reads.
        qmp = Qmp(os.path.join(tmp, "qmp.sock"))

        def paused_read():
            ok(qmp.command("stop") == {"return": {}}, "QMP stop")
            r = subprocess.run([os.path.join(GUEST, "read-counter"), "--format", "raw", disk],
                               capture_output=True, text=True)
            qmp.command("cont")
            return r
        first = paused_read()
        time.sleep(1)
        second = paused_read()
        ok(first.returncode == 0 and "consistent=yes" in first.stdout, "read-counter reads a consistent counter",
           first.stdout + first.stderr)

        def value(r):
            try:
                return int(r.stdout.split()[0].split("=")[1])
            except (IndexError, ValueError):
                return -1
        ok(value(second) > value(first) > 0, "counter advances on the raw disk",
           "%s -> %s" % (first.stdout.strip(), second.stdout.strip()))
    finally:
        qemu.kill()
        qemu.wait()

    # After QEMU is gone the image is final: still consistent, still readable.
    final = subprocess.run([os.path.join(GUEST, "read-counter"), disk], capture_output=True, text=True)
    ok(final.returncode == 0, "image consistent after the guest was killed", final.stdout + final.stderr)
    # A torn slot must be detected.
    value_now = int(final.stdout.split()[0].split("=")[1]) if final.returncode == 0 else 0
    with open(disk, "r+b") as f:
        f.seek(((value_now - 3) % 256) * 4096 + 100)
        f.write(b"\x00torn")
    torn = subprocess.run([os.path.join(GUEST, "read-counter"), disk], capture_output=True, text=True)
    ok(torn.returncode == 1 and "consistent=no" in torn.stdout, "read-counter detects a torn record", torn.stdout)
    # qcow2 images are read through qemu-img dd.
    qcow = os.path.join(tmp, "counter.qcow2")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", disk, qcow], check=True)
    viaq = subprocess.run([os.path.join(GUEST, "read-counter"), qcow], capture_output=True, text=True)
    ok(viaq.stdout == torn.stdout, "read-counter reads qcow2 like raw", viaq.stdout + viaq.stderr)
    subprocess.run(["rm", "-rf", tmp])
    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
