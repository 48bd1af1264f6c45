// xdr.cc - XDR encoder and bounds-checked decoder.

#include "util/xdr.hh"

#include "util/log.hh"

#include <cstring>

#define LOG_MODULE "util.xdr"

namespace virtsnap::xdr {

namespace {
size_t padding(size_t n) { return (4 - (n & 3)) & 3; }
}  // namespace

Error decode_error(std::string_view what) {
    VS_DEBUG("XDR decode failed: %.*s", int(what.size()), what.data());
    // libvirt reports every payload decoding failure with these words.
    return make_error(VIR_ERR_RPC, VIR_FROM_RPC, "Unable to decode message payload");
}

// ---- Encoder ----

void Encoder::set_error(std::string detail) {
    if (status_) status_ = fail(VIR_ERR_RPC, VIR_FROM_RPC, std::move(detail));
}

void Encoder::put_uint(uint32_t v) {
    uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    buf_.insert(buf_.end(), b, b + 4);
}

void Encoder::put_uhyper(uint64_t v) {
    put_uint(uint32_t(v >> 32));
    put_uint(uint32_t(v));
}

void Encoder::put_double(double v) {
    uint64_t bits;
    static_assert(sizeof bits == sizeof v);
    std::memcpy(&bits, &v, sizeof bits);
    put_uhyper(bits);
}

void Encoder::put_string(std::string_view s, uint32_t max) {
    if (s.size() > max) {
        set_error("string of " + std::to_string(s.size()) + " bytes exceeds the limit of " +
                  std::to_string(max));
        s = {};
    }
    put_uint(uint32_t(s.size()));
    buf_.insert(buf_.end(), s.begin(), s.end());
    buf_.insert(buf_.end(), padding(s.size()), 0);
}

void Encoder::put_optional_string(const std::optional<std::string> &s, uint32_t max) {
    put_bool(s.has_value());
    if (s) put_string(*s, max);
}

void Encoder::put_opaque_fixed(std::span<const uint8_t> bytes) {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
    buf_.insert(buf_.end(), padding(bytes.size()), 0);
}

void Encoder::put_count(size_t count, uint32_t max) {
    if (count > max) {
        set_error("array of " + std::to_string(count) + " elements exceeds the limit of " +
                  std::to_string(max));
        count = 0;
    }
    put_uint(uint32_t(count));
}

void Encoder::put_char_array(std::string_view s, uint32_t max) {
    if (s.size() > max) {
        set_error("char array of " + std::to_string(s.size()) + " exceeds the limit of " +
                  std::to_string(max));
        s = {};
    }
    put_uint(uint32_t(s.size()));
    for (char c : s) put_int(int32_t(static_cast<signed char>(c)));
}

void Encoder::put_char_fixed(std::string_view s, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) put_int(i < s.size() ? int32_t(static_cast<signed char>(s[i])) : 0);
}

void Encoder::patch_uint(size_t offset, uint32_t v) {
    if (offset + 4 > buf_.size()) return;
    buf_[offset] = uint8_t(v >> 24);
    buf_[offset + 1] = uint8_t(v >> 16);
    buf_[offset + 2] = uint8_t(v >> 8);
    buf_[offset + 3] = uint8_t(v);
}

// ---- Decoder ----

Status Decoder::need(size_t n) {
    if (n > remaining()) return fail(decode_error("input truncated"));
    return ok();
}

Result<uint32_t> Decoder::get_uint() {
    TRY(need(4));
    const uint8_t *p = in_.data() + pos_;
    pos_ += 4;
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

Result<int32_t> Decoder::get_int() { return int32_t(TRY(get_uint())); }

Result<uint64_t> Decoder::get_uhyper() {
    TRY(need(8));
    uint64_t hi = TRY(get_uint());
    uint64_t lo = TRY(get_uint());
    return (hi << 32) | lo;
}

Result<int64_t> Decoder::get_hyper() { return int64_t(TRY(get_uhyper())); }

Result<bool> Decoder::get_bool() {
    uint32_t v = TRY(get_uint());
    if (v > 1) return fail(decode_error("bool is neither 0 nor 1"));
    return v == 1;
}

Result<double> Decoder::get_double() {
    uint64_t bits = TRY(get_uhyper());
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

Result<std::string> Decoder::get_string(uint32_t max) {
    uint32_t len = TRY(get_uint());
    if (len > max) return fail(decode_error("string longer than its limit"));
    size_t padded = size_t(len) + padding(len);
    TRY(need(padded));
    std::string s(reinterpret_cast<const char *>(in_.data() + pos_), len);
    pos_ += padded;
    return s;
}

Result<std::optional<std::string>> Decoder::get_optional_string(uint32_t max) {
    bool present = TRY(get_bool());
    if (!present) return std::optional<std::string>();
    return std::optional<std::string>(TRY(get_string(max)));
}

Status Decoder::get_opaque_fixed(std::span<uint8_t> out) {
    size_t padded = out.size() + padding(out.size());
    TRY(need(padded));
    std::memcpy(out.data(), in_.data() + pos_, out.size());
    pos_ += padded;
    return ok();
}

Result<uint32_t> Decoder::get_count(uint32_t max, size_t min_element_size) {
    uint32_t n = TRY(get_uint());
    if (n > max) return fail(decode_error("array longer than its limit"));
    if (min_element_size > 0 && size_t(n) > remaining() / min_element_size)
        return fail(decode_error("array count larger than the input"));
    return n;
}

Result<std::string> Decoder::get_char_array(uint32_t max) {
    uint32_t n = TRY(get_count(max, 4));
    std::string s;
    s.reserve(n);
    for (uint32_t i = 0; i < n; i++) s.push_back(char(TRY(get_int())));
    return s;
}

Result<std::string> Decoder::get_char_fixed(uint32_t n) {
    if (size_t(n) > remaining() / 4) return fail(decode_error("input truncated"));
    std::string s;
    s.reserve(n);
    for (uint32_t i = 0; i < n; i++) s.push_back(char(TRY(get_int())));
    // A fixed char array is a C string padded with NULs.
    if (size_t nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
    return s;
}

}  // namespace virtsnap::xdr
