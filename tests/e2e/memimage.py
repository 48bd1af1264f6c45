"""memimage - what the memory-image e2e tests (test_memory_image_format,
test_memory_direct_io) check the same way, around one guest: the save image's
header read by an independent parser, qemu-img on the overlays, and the
heartbeat evidence that a restore or a revert brought back the saved instant
without a reboot (test_save_restore's and test_instant_pause's evidence)."""
import json
import os
import re
import struct
import subprocess
import time

HEADER = struct.Struct("<16sIIIII56s")   # magic, version, data_len, was_running, format, cookieOffset, unused[14]
FMT_RAW, FMT_SPARSE = 0, 6
HEARTBEAT = r"VSHB (\d+) ([\d.]+) gap=\d+"


def parse_image(path):
    """The save image's header; a dict, or None when unreadable."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            magic, version, data_len, was_running, fmt, cookie_off, unused = HEADER.unpack(f.read(HEADER.size))
            data = f.read(data_len)
            f.seek(HEADER.size + data_len)
            stream = f.read(8)
    except (OSError, struct.error):
        return None
    nul = data.find(b"\0")
    return {"magic": magic, "version": version, "data_len": data_len, "was_running": was_running, "format": fmt,
            "cookie_off": cookie_off, "unused_zero": unused == b"\0" * 56,
            "xml": data[:nul].decode(errors="replace") if nul >= 0 else "", "stream": stream,
            "size": st.st_size, "allocated": st.st_blocks * 512}


def summary(h):
    return repr({k: v for k, v in (h or {}).items() if k != "xml"})


def img_info(path, chain=False):
    cmd = ["qemu-img", "info", "-U", "--output=json"] + (["--backing-chain"] if chain else []) + [path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def img_check(path):
    out = ""
    for _ in range(3):   # -U may race QEMU growing an image it has open: read it again
        r = subprocess.run(["qemu-img", "check", "-U", path], capture_output=True, text=True)
        out = r.stdout + r.stderr
        if r.returncode == 0:
            return True, out
        time.sleep(0.5)
    return False, out


class Checks:
    """The checks on guest `dom` of `env` (vstest.Env), reported to `tap`; `conf`
    is the daemon's virtsnapd.conf."""

    def __init__(self, env, tap, conf, dom="g1"):
        self.env, self.t, self.conf, self.dom = env, tap, conf, dom

    def write_conf(self, text):
        os.makedirs(os.path.dirname(self.conf), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(text)

    def restart_daemon(self, conf, label, fatal=False):
        self.env.daemon.stop()
        self.write_conf(conf)
        started = self.t.ok(self.env.daemon.start(), "virtsnapd starts with %s" % label,
                            self.env.daemon.log_text()[-2000:])
        if fatal and not started:
            self.t.finish()

    def refuses_to_start(self, conf_text, label):
        """virtsnapd given `conf_text` stops at start-up with a configuration error
        that names virtsnapd.conf (a known key with a bad value, not an unknown one)."""
        self.write_conf(conf_text)
        e = dict(os.environ)
        e.setdefault("VIRTSNAP_KVM", "0")
        try:
            cp = subprocess.run([self.env.daemon.binary, "--root", self.env.root], capture_output=True, text=True,
                                timeout=20, env=e)
            rc, err = cp.returncode, cp.stderr
        except subprocess.TimeoutExpired:
            rc, err = None, "virtsnapd kept running"
        self.t.ok(rc not in (0, None) and "virtsnapd.conf" in err and "unknown setting" not in err,
                  "%s: virtsnapd refuses to start with a configuration error (a known key, a bad value)" % label,
                  "rc=%r\n%s" % (rc, err))

    def serial_appended(self, xml):
        """`xml` with the guest's serial log kept across QEMU restarts (revert, restore)."""
        log = self.env.serial_log(self.dom)
        return xml.replace("<source path='%s'/>" % log, "<source path='%s' append='on'/>" % log)

    def boot(self, xml):
        """Defines the guest from `xml`, starts it and waits until it is up."""
        path = os.path.join(self.env.tmp, self.dom + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        self.env.virsh_ok("define " + self.dom, "define", path)
        self.env.virsh_ok("start " + self.dom, "start", self.dom)
        self.t.ok(self.env.wait_serial(self.dom, r"VSGUEST ready", timeout=180) is not None, self.dom + " boots",
                  self.env.serial_text(self.dom)[-1500:])

    def check_raw_image(self, label, path, was_running=1):
        h = parse_image(path)
        self.t.ok(h is not None and h["magic"] == b"LibvirtQemudSave" and h["version"] == 2 and
                  h["format"] == FMT_RAW and h["was_running"] == was_running and h["unused_zero"] and
                  h["stream"][:4] == b"QEVM",
                  "%s: complete image, format 0 (the plain stream), was_running %d" % (label, was_running),
                  summary(h))
        return h

    def images(self):
        return sorted(os.listdir(self.env.images))

    def snap_names(self):
        return [n for n in self.env.virsh("snapshot-list", self.dom, "--name").out.split() if n]

    def state(self):
        return self.env.virsh("domstate", self.dom, "--reason").out.strip()

    def readies(self):
        return self.env.serial_text(self.dom).count("VSGUEST ready")

    def hb_from(self, offset):
        """[(seq, guest_ms)] of the heartbeat lines after byte `offset` of the serial log."""
        return [(int(m.group(1)), float(m.group(2)))
                for m in re.finditer(HEARTBEAT, self.env.serial_text(self.dom)[offset:])]

    def last_seq(self, text_len=None):
        text = self.env.serial_text(self.dom)
        seqs = [int(m.group(1)) for m in re.finditer(HEARTBEAT, text[:text_len] if text_len else text)]
        return seqs[-1] if seqs else None

    def progresses(self, label):
        n = len(self.env.serial_text(self.dom))
        self.t.ok(self.env.wait_serial(self.dom, r"VSHB \d+ [\d.]+ gap=\d+", timeout=30, start=n) is not None,
                  "%s: guest running, heartbeats progressing" % label)

    def frozen(self):
        """(serial offset, last seq) once the guest is stopped (saved)."""
        return len(self.env.serial_text(self.dom)), self.last_seq()

    def check_continues(self, label, point, readies_before):
        """After a restore: the first heartbeats follow the saved one, no reboot."""
        offset, seq = point
        deadline = time.time() + 30
        nxt = []
        while time.time() < deadline:
            nxt = [s for s, _ in self.hb_from(offset)][:3]
            if len(nxt) == 3:
                break
            time.sleep(0.2)
        self.t.ok(seq is not None and len(nxt) == 3 and nxt[0] in (seq + 1, seq + 2) and nxt == sorted(nxt),
                  "%s: heartbeat continues after seq %s" % (label, seq), "next=%r" % nxt)
        self.t.eq(self.readies(), readies_before, "%s: guest did not reboot" % label)

    def after_revert(self, offset, prev):
        """The heartbeats the reverted guest printed: those after the first step back in
        the sequence (the old QEMU may have printed a few more after `offset`)."""
        deadline = time.time() + 30
        while time.time() < deadline:
            hb = self.hb_from(offset)
            p = prev
            for i, (s, _) in enumerate(hb):
                if s <= p:
                    if len(hb) - i >= 3:
                        return hb[i:]
                    break
                p = s
            time.sleep(0.2)
        return []

    def revert_running(self, label, snap, window):
        """virsh snapshot-revert to `snap` (a running snapshot taken during `window`,
        the heartbeat seqs before and after its call): running, back at its instant."""
        rb = self.readies()
        prev, off = self.last_seq(), len(self.env.serial_text(self.dom))
        self.env.virsh_ok("virsh snapshot-revert %s %s" % (self.dom, snap), "snapshot-revert", self.dom, snap)
        self.t.eq(self.env.domain_state(self.dom), "running", "%s: running (the snapshot's state)" % label)
        self.check_revert(label, window, off, prev, rb)
        self.progresses(label)

    def check_revert(self, label, window, offset, prev, readies_before):
        """The reverted guest continues from inside the snapshot call's window."""
        lo, hi = window
        post = self.after_revert(offset, prev)
        first = post[0][0] if post else None
        self.t.ok(first is not None and lo is not None and lo < first <= hi + 2 and first < prev,
                  "%s: heartbeat continues from inside the snapshot call (%s < %s <= %s + 2), back from %s" %
                  (label, lo, first, hi, prev), "post=%r" % post[:5])
        self.t.eq(self.readies(), readies_before, "%s: guest did not reboot" % label)
