// uuid.hh - 16-byte UUIDs in libvirt's text form (lower-case, dashed).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace virtsnap {

struct Uuid {
    std::array<uint8_t, 16> bytes{};

    static Uuid generate();  // random, version 4
    // Accepts libvirt's forms: 32 hex digits, optionally with dashes anywhere
    // between byte pairs and surrounding spaces (virUUIDParse).
    static std::optional<Uuid> parse(std::string_view text);
    std::string str() const;
    bool operator==(const Uuid &) const = default;
};

}  // namespace virtsnap
