// packet.hh - libvirt RPC framing: the length word, the 24-byte header and the
// limits a server enforces before it trusts a length (virnetprotocol.x).
#pragma once

#include "util/result.hh"
#include "util/xdr.hh"

#include <cstdint>
#include <span>
#include <vector>

namespace virtsnap::rpc {

inline constexpr uint32_t kRemoteProgram = 0x20008086;
inline constexpr uint32_t kQemuProgram = 0x20008087;
inline constexpr uint32_t kKeepaliveProgram = 0x6b656570;  // "keep"
inline constexpr uint32_t kProtocolVersion = 1;

inline constexpr int32_t kKeepalivePing = 1;
inline constexpr int32_t kKeepalivePong = 2;

enum class MessageType : int32_t {
    Call = 0,
    Reply = 1,
    Message = 2,
    Stream = 3,
    CallWithFds = 4,
    ReplyWithFds = 5,
    StreamHole = 6,
};

enum class MessageStatus : int32_t { Ok = 0, Error = 1, Continue = 2 };

inline constexpr uint32_t kLengthWordSize = 4;
inline constexpr uint32_t kHeaderSize = 24;
// The smallest packet is a length word and a header; the largest is 32 MiB.
inline constexpr uint32_t kMinPacket = kLengthWordSize + kHeaderSize;
inline constexpr uint32_t kMaxPacket = 33554432;
// Events are sent with this serial; keepalive messages with 0 (libvirtd's values).
inline constexpr uint32_t kEventSerial = 1;

struct Header {
    uint32_t prog = kRemoteProgram;
    uint32_t vers = kProtocolVersion;
    int32_t proc = 0;
    MessageType type = MessageType::Call;
    uint32_t serial = 0;
    MessageStatus status = MessageStatus::Ok;
    bool operator==(const Header &) const = default;
};

// Checks a packet's length word (total length including the word itself).
[[nodiscard]] Status check_length(uint32_t length);
// Reads the big-endian length word from the first 4 bytes.
uint32_t read_length_word(std::span<const uint8_t, 4> word);

// Parses the header from a packet without its length word; the payload follows.
[[nodiscard]] Result<Header> parse_header(std::span<const uint8_t> after_length);

// Starts a packet: a placeholder length word and the header.
void begin_packet(xdr::Encoder &e, const Header &h);
// Writes the final length word; fails when the packet is over kMaxPacket.
[[nodiscard]] Status finish_packet(xdr::Encoder &e);

}  // namespace virtsnap::rpc
