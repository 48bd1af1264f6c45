// qvalue.hh - a QAPI-shaped value: what QMP arguments, QMP replies and
// QEMU's JSON command-line options (-blockdev) are made of.
//
// Code outside monitor_json.cc describes QEMU data with QValue and never
// touches JSON; monitor_json.cc is the one file that turns QValues into JSON
// text and back. Dictionaries keep insertion order so generated command lines
// and QMP commands are stable and match golden files.
#pragma once

#include "util/result.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace virtsnap::qemu {

struct QValue;
using QDict = std::vector<std::pair<std::string, QValue>>;
using QList = std::vector<QValue>;

struct QValue {
    std::variant<std::nullptr_t, bool, int64_t, uint64_t, double, std::string, QDict, QList> v;

    QValue() : v(nullptr) {}
    QValue(std::nullptr_t) : v(nullptr) {}
    QValue(bool b) : v(b) {}
    QValue(int i) : v(int64_t(i)) {}
    QValue(int64_t i) : v(i) {}
    QValue(uint64_t u) : v(u) {}
    QValue(double d) : v(d) {}
    QValue(const char *s) : v(std::string(s)) {}
    QValue(std::string s) : v(std::move(s)) {}
    QValue(QDict d) : v(std::move(d)) {}
    QValue(QList l) : v(std::move(l)) {}

    bool is_null() const { return std::holds_alternative<std::nullptr_t>(v); }
    const QDict *dict() const { return std::get_if<QDict>(&v); }
    const QList *list() const { return std::get_if<QList>(&v); }
    const std::string *str() const { return std::get_if<std::string>(&v); }
    std::optional<int64_t> integer() const;
    std::optional<bool> boolean() const { if (auto b = std::get_if<bool>(&v)) return *b; return std::nullopt; }
    // Member of a dict by key, or nullptr.
    const QValue *get(std::string_view key) const;
};

// Implemented in monitor_json.cc.
std::string qvalue_to_json(const QValue &value);
[[nodiscard]] Result<QValue> qvalue_from_json(std::string_view text);

}  // namespace virtsnap::qemu
