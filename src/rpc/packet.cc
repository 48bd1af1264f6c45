// packet.cc - RPC framing and header codec.

#include "rpc/packet.hh"

#include <string>

namespace virtsnap::rpc {

Status check_length(uint32_t length) {
    if (length < kMinPacket || length > kMaxPacket)
        return fail(VIR_ERR_RPC, VIR_FROM_RPC,
                    "packet length " + std::to_string(length) + " out of range");
    return ok();
}

uint32_t read_length_word(std::span<const uint8_t, 4> w) {
    return (uint32_t(w[0]) << 24) | (uint32_t(w[1]) << 16) | (uint32_t(w[2]) << 8) | uint32_t(w[3]);
}

Result<Header> parse_header(std::span<const uint8_t> after_length) {
    xdr::Decoder d(after_length);
    Header h;
    h.prog = TRY(d.get_uint());
    h.vers = TRY(d.get_uint());
    h.proc = TRY(d.get_int());
    h.type = MessageType(TRY(d.get_int()));
    h.serial = TRY(d.get_uint());
    h.status = MessageStatus(TRY(d.get_int()));
    return h;
}

void begin_packet(xdr::Encoder &e, const Header &h) {
    e.put_uint(0);
    e.put_uint(h.prog);
    e.put_uint(h.vers);
    e.put_int(h.proc);
    e.put_int(int32_t(h.type));
    e.put_uint(h.serial);
    e.put_int(int32_t(h.status));
}

Status finish_packet(xdr::Encoder &e) {
    if (e.size() > kMaxPacket)
        return fail(VIR_ERR_RPC, VIR_FROM_RPC, "message payload too large");
    e.patch_uint(0, uint32_t(e.size()));
    return ok();
}

}  // namespace virtsnap::rpc
