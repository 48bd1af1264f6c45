// replies.cc - server packet builders.

#include "rpc/replies.hh"

#include "util/log.hh"

#define LOG_MODULE "rpc.replies"

namespace virtsnap::rpc {

namespace {
std::vector<uint8_t> packet(const Header &h, std::span<const uint8_t> body) {
    xdr::Encoder e;
    begin_packet(e, h);
    e.put_opaque_fixed(body);  // bodies are whole XDR words: no padding is added
    if (!finish_packet(e)) {
        // Only a driver answer over 32 MiB gets here; the client gets an error instead.
        VS_ERROR("reply to procedure %d is larger than the protocol allows", h.proc);
        Header eh = h;
        eh.status = MessageStatus::Error;
        xdr::Encoder err;
        begin_packet(err, eh);
        (void)encode(err, to_remote_error(make_error(VIR_ERR_RPC, VIR_FROM_RPC, "message payload too large")));
        (void)finish_packet(err);
        return err.take();
    }
    return e.take();
}
}  // namespace

RemoteError to_remote_error(const Error &err) {
    RemoteError r;
    r.code = err.code;
    r.domain = err.domain;
    r.message = err.message();
    r.level = 2;  // VIR_ERR_ERROR
    // virReportError stores the generic text and the detail in str1/str2, int1/int2 unused (-1).
    r.str1 = std::string(generic_error_text(err.code, !err.detail.empty()));
    if (!err.detail.empty()) r.str2 = err.detail;
    r.int1 = -1;
    r.int2 = -1;
    return r;
}

std::vector<uint8_t> make_reply(const Header &call, std::span<const uint8_t> body) {
    Header h = call;
    h.type = MessageType::Reply;
    h.status = MessageStatus::Ok;
    return packet(h, body);
}

std::vector<uint8_t> make_error_reply(const Header &call, const Error &err) {
    Header h = call;
    h.type = MessageType::Reply;
    h.status = MessageStatus::Error;
    xdr::Encoder body;
    RemoteError re = to_remote_error(err);
    if (!encode(body, re)) {
        // A message over the string limit: send the code without the text.
        body = xdr::Encoder();
        re.message = generic_error_text(err.code, false);
        re.str1.reset();
        re.str2.reset();
        (void)encode(body, re);
    }
    return packet(h, body.bytes());
}

std::vector<uint8_t> make_event(int32_t proc, std::span<const uint8_t> body) {
    Header h;
    h.prog = kRemoteProgram;
    h.proc = proc;
    h.type = MessageType::Message;
    h.serial = kEventSerial;
    return packet(h, body);
}

std::vector<uint8_t> make_keepalive(int32_t proc) {
    Header h;
    h.prog = kKeepaliveProgram;
    h.proc = proc;
    h.type = MessageType::Message;
    h.serial = 0;
    return packet(h, {});
}

}  // namespace virtsnap::rpc
