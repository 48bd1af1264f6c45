// uuid.cc - UUID generation and libvirt-compatible parsing.

#include "util/uuid.hh"

#include <cstdio>

#include <sys/random.h>

namespace virtsnap {

Uuid Uuid::generate() {
    Uuid u;
    size_t got = 0;
    while (got < u.bytes.size()) {
        ssize_t n = getrandom(u.bytes.data() + got, u.bytes.size() - got, 0);
        if (n > 0) got += size_t(n);
    }
    u.bytes[6] = uint8_t((u.bytes[6] & 0x0f) | 0x40);
    u.bytes[8] = uint8_t((u.bytes[8] & 0x3f) | 0x80);
    return u;
}

namespace {
int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::optional<Uuid> Uuid::parse(std::string_view text) {
    size_t i = 0;
    while (i < text.size() && text[i] == ' ') ++i;
    Uuid u;
    for (size_t b = 0; b < 16; ++b) {
        if (i < text.size() && text[i] == '-') ++i;
        if (i + 1 >= text.size()) return std::nullopt;
        int hi = hexval(text[i]), lo = hexval(text[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        u.bytes[b] = uint8_t(hi * 16 + lo);
        i += 2;
    }
    while (i < text.size() && text[i] == ' ') ++i;
    if (i != text.size()) return std::nullopt;
    return u;
}

std::string Uuid::str() const {
    char buf[37];
    std::snprintf(buf, sizeof buf,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                  bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                  bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
    return buf;
}

}  // namespace virtsnap
