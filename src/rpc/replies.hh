// replies.hh - builds the packets a server sends: replies, error replies with
// libvirt's remote_error, event messages and keepalive messages.
#pragma once

#include "rpc/packet.hh"
#include "rpc/remote_protocol.hh"

#include "util/error.hh"

#include <cstdint>
#include <span>
#include <vector>

namespace virtsnap::rpc {

// A REPLY with status OK echoing the call's program, version, procedure and serial.
std::vector<uint8_t> make_reply(const Header &call, std::span<const uint8_t> body);
// A REPLY with status ERROR whose body is the remote_error for `err`.
std::vector<uint8_t> make_error_reply(const Header &call, const Error &err);
// The remote_error libvirtd fills from a virError.
RemoteError to_remote_error(const Error &err);
// A MESSAGE from the REMOTE program (an event), serial 1 as libvirtd sends them.
std::vector<uint8_t> make_event(int32_t proc, std::span<const uint8_t> body);
// A keepalive PING or PONG: MESSAGE, serial 0, no body.
std::vector<uint8_t> make_keepalive(int32_t proc);

// Encodes a message body, turning an encoding failure into an error.
template <typename T>
Result<std::vector<uint8_t>> encode_body(const T &msg) {
    xdr::Encoder e;
    TRY(encode(e, msg));
    return e.take();
}

}  // namespace virtsnap::rpc
