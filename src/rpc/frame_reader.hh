// frame_reader.hh - the input side of libvirt's framing: bytes as they arrive
// from a socket in, whole packets out, with the length word checked before it
// is trusted. rpc::Connection reads into it; the fuzzer feeds it directly, so
// both exercise the same code.
//
// The buffer grows only with bytes actually received (never from a length
// word), and a length outside 28 .. 32 MiB is an error after which the stream
// cannot be resynchronised: the caller drops the connection.
#pragma once

#include "util/result.hh"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace virtsnap::rpc {

class FrameReader {
public:
    // Room for `n` more bytes at the end of the buffer; call commit() with what
    // was actually written there (recv straight into the buffer).
    std::span<uint8_t> reserve(size_t n);
    void commit(size_t n);
    // Copies bytes in (tests, fuzzer).
    void append(std::span<const uint8_t> bytes);

    // Hands each whole packet (without its length word) to `handle` while
    // `may_continue()` allows; packets held back stay for the next call. The
    // span is valid only during the call. Fails on a bad length word.
    [[nodiscard]] Status drain(const std::function<bool()> &may_continue,
                               const std::function<void(std::span<const uint8_t>)> &handle);

    size_t buffered() const { return buf_.size() - reserved_; }
    void clear();

private:
    std::vector<uint8_t> buf_;
    size_t reserved_ = 0;  // bytes at the end handed out by reserve() and not committed
};

}  // namespace virtsnap::rpc
