// xdr.hh - XDR (RFC 4506) encoding and bounds-checked decoding, as rpcgen's
// xdr_* routines encode libvirt's RPC messages.
//
// The Encoder appends to a byte buffer and keeps the first error (a string or an
// array over its declared maximum) so long message visitors need not check every
// field; callers look at status() once at the end. The Decoder never reads past
// its input and never allocates from a length it has not checked against both
// the declared maximum and the bytes actually left.
#pragma once

#include "util/result.hh"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::xdr {

// REMOTE_STRING_MAX: the bound libvirt puts on remote_nonnull_string.
inline constexpr uint32_t kStringMax = 4194304;

class Encoder {
public:
    void put_int(int32_t v) { put_uint(uint32_t(v)); }
    void put_uint(uint32_t v);
    void put_hyper(int64_t v) { put_uhyper(uint64_t(v)); }
    void put_uhyper(uint64_t v);
    void put_bool(bool v) { put_uint(v ? 1 : 0); }
    void put_double(double v);
    // string<max>: length word, bytes, zero padding to 4.
    void put_string(std::string_view s, uint32_t max = kStringMax);
    // *string: presence word, then the string when present.
    void put_optional_string(const std::optional<std::string> &s, uint32_t max = kStringMax);
    // opaque[n]: n bytes and padding, no length word.
    void put_opaque_fixed(std::span<const uint8_t> bytes);
    // Array count word, checked against the declared maximum.
    void put_count(size_t count, uint32_t max);
    // char x<max>: rpcgen encodes each char as a 4-byte int.
    void put_char_array(std::string_view s, uint32_t max);
    // char x[n]: n chars of 4 bytes each; s is NUL padded (or truncated) to n.
    void put_char_fixed(std::string_view s, uint32_t n);

    // Overwrites a word written earlier (the packet length).
    void patch_uint(size_t offset, uint32_t v);

    // The first error met while encoding, if any.
    const Status &status() const { return status_; }
    const std::vector<uint8_t> &bytes() const { return buf_; }
    std::vector<uint8_t> take() { return std::move(buf_); }
    size_t size() const { return buf_.size(); }

private:
    void set_error(std::string detail);
    std::vector<uint8_t> buf_;
    Status status_;
};

class Decoder {
public:
    explicit Decoder(std::span<const uint8_t> input) : in_(input) {}

    [[nodiscard]] Result<int32_t> get_int();
    [[nodiscard]] Result<uint32_t> get_uint();
    [[nodiscard]] Result<int64_t> get_hyper();
    [[nodiscard]] Result<uint64_t> get_uhyper();
    // xdr_bool accepts exactly 0 and 1.
    [[nodiscard]] Result<bool> get_bool();
    [[nodiscard]] Result<double> get_double();
    [[nodiscard]] Result<std::string> get_string(uint32_t max = kStringMax);
    [[nodiscard]] Result<std::optional<std::string>> get_optional_string(uint32_t max = kStringMax);
    [[nodiscard]] Status get_opaque_fixed(std::span<uint8_t> out);
    // An array count: at most `max`, and at most what the remaining input can
    // hold when each element takes at least `min_element_size` bytes.
    [[nodiscard]] Result<uint32_t> get_count(uint32_t max, size_t min_element_size);
    [[nodiscard]] Result<std::string> get_char_array(uint32_t max);
    [[nodiscard]] Result<std::string> get_char_fixed(uint32_t n);

    size_t remaining() const { return in_.size() - pos_; }
    size_t position() const { return pos_; }

private:
    [[nodiscard]] Status need(size_t n);
    std::span<const uint8_t> in_;
    size_t pos_ = 0;
};

// The error every decoding failure reports (libvirt's words for a bad payload).
Error decode_error(std::string_view what);

}  // namespace virtsnap::xdr
