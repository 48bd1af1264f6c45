// frame_reader.cc - splitting the byte stream into packets.

#include "rpc/frame_reader.hh"

#include "rpc/packet.hh"

#include <algorithm>

namespace virtsnap::rpc {

std::span<uint8_t> FrameReader::reserve(size_t n) {
    size_t used = buffered();
    buf_.resize(used + n);
    reserved_ = n;
    return std::span<uint8_t>(buf_.data() + used, n);
}

void FrameReader::commit(size_t n) {
    n = std::min(n, reserved_);
    buf_.resize(buf_.size() - reserved_ + n);
    reserved_ = 0;
}

void FrameReader::append(std::span<const uint8_t> bytes) {
    commit(0);
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
}

void FrameReader::clear() {
    buf_.clear();
    reserved_ = 0;
}

Status FrameReader::drain(const std::function<bool()> &may_continue,
                          const std::function<void(std::span<const uint8_t>)> &handle) {
    commit(0);
    size_t at = 0;
    Status result = ok();
    while (may_continue() && buf_.size() >= at + kLengthWordSize) {
        uint32_t len = read_length_word(std::span<const uint8_t, 4>(buf_.data() + at, 4));
        if (auto s = check_length(len); !s) {
            result = std::move(s);
            break;
        }
        if (buf_.size() - at < len) break;
        handle(std::span<const uint8_t>(buf_.data() + at + kLengthWordSize, len - kLengthWordSize));
        at += len;
    }
    // `handle` may have cleared the buffer (the connection closed meanwhile).
    buf_.erase(buf_.begin(), buf_.begin() + long(std::min(at, buf_.size())));
    return result;
}

}  // namespace virtsnap::rpc
