#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_rpc_packet (tests/fuzz/seeds/fuzz_rpc_packet/).

Each seed is one mode byte (bit 0: raw payload for a handler instead of a packet
stream; bit 1: read-only; bits 2..7: chunk size the stream arrives in) and then
client packets in libvirt's framing, as virsh sends them after CONNECT_OPEN.
"""
import os
import struct
import sys

REMOTE = 0x20008086
KEEPALIVE = 0x6B656570


def xstr(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b + b"\0" * ((4 - len(b) % 4) % 4)


def dom(name, uuid=bytes(range(16)), id_=-1):
    return xstr(name) + uuid + struct.pack(">i", id_)


def packet(proc, serial, body=b"", prog=REMOTE, typ=0):
    hdr = struct.pack(">IIiIII", prog, 1, proc, typ, serial, 0)
    return struct.pack(">I", 4 + len(hdr) + len(body)) + hdr + body


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {
        "handshake": packet(66, 0) + packet(60, 1, struct.pack(">i", 10)) + packet(360, 2),
        "list_all": packet(273, 3, struct.pack(">iI", 1, 3)) + packet(212, 4, dom("a") + struct.pack(">I", 0)),
        "lookup_xml": packet(23, 5, xstr("alpha")) + packet(14, 6, dom("alpha") + struct.pack(">I", 1)),
        "events": packet(316, 7, struct.pack(">ii", 0, 0)) + packet(316, 8, struct.pack(">ii", 8, 1) + dom("a"))
        + packet(317, 9, struct.pack(">i", 1)) + packet(167, 10, struct.pack(">i", 0)),
        "keepalive": packet(1, 0, prog=KEEPALIVE, typ=2) + packet(2, 0, prog=KEEPALIVE, typ=2),
        "block_copy": packet(345, 11, dom("a") + xstr("vda") + xstr("<disk/>") + struct.pack(">I", 1)
                             + xstr("bandwidth") + struct.pack(">iQ", 4, 1 << 20) + struct.pack(">I", 4)),
        "snapshot": packet(185, 12, dom("a") + xstr("<domainsnapshot/>") + struct.pack(">I", 16))
        + packet(274, 13, dom("a") + struct.pack(">iI", 1, 0)),
        "unknown": packet(9999, 14) + packet(1, 15, prog=0x1234),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"\0" + data)
    # Split across reads (3-byte chunks), and more calls than may be in flight at once.
    with open(os.path.join(out, "chunked"), "wb") as f:
        f.write(bytes([3 << 2]) + seeds["lookup_xml"] + seeds["list_all"])
    with open(os.path.join(out, "in_flight"), "wb") as f:
        f.write(b"\0" + b"".join(packet(212, 20 + i, dom("a") + struct.pack(">I", 0)) for i in range(8)))
    # Raw payload seeds: mode 1, procedure index, payload.
    with open(os.path.join(out, "raw_dom_flags"), "wb") as f:
        f.write(b"\x01\x07" + dom("x") + struct.pack(">I", 0))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "seeds", "fuzz_rpc_packet"))
