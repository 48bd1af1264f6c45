// monitor_json.cc - the one file of virtsnap that builds and reads JSON.
//
// QMP commands and replies, guest-agent messages and QEMU's JSON command-line
// options are all converted here between JSON text and QValue / typed structs,
// so the rest of the code never handles JSON.

#include "qemu/qvalue.hh"

#include <nlohmann/json.hpp>

namespace virtsnap::qemu {

using nlohmann::ordered_json;

std::optional<int64_t> QValue::integer() const {
    if (auto i = std::get_if<int64_t>(&v)) return *i;
    if (auto u = std::get_if<uint64_t>(&v)) return int64_t(*u);
    return std::nullopt;
}

const QValue *QValue::get(std::string_view key) const {
    const QDict *d = dict();
    if (!d) return nullptr;
    for (const auto &[k, val] : *d)
        if (k == key) return &val;
    return nullptr;
}

namespace {

ordered_json to_json(const QValue &q) {
    return std::visit(
        [](const auto &x) -> ordered_json {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) return nullptr;
            else if constexpr (std::is_same_v<T, QDict>) {
                ordered_json o = ordered_json::object();
                for (const auto &[k, v] : x) o[k] = to_json(v);
                return o;
            } else if constexpr (std::is_same_v<T, QList>) {
                ordered_json a = ordered_json::array();
                for (const auto &v : x) a.push_back(to_json(v));
                return a;
            } else return x;
        },
        q.v);
}

QValue from_json(const ordered_json &j) {
    switch (j.type()) {
    case ordered_json::value_t::null: return QValue(nullptr);
    case ordered_json::value_t::boolean: return QValue(j.get<bool>());
    case ordered_json::value_t::number_integer: return QValue(j.get<int64_t>());
    case ordered_json::value_t::number_unsigned: return QValue(j.get<uint64_t>());
    case ordered_json::value_t::number_float: return QValue(j.get<double>());
    case ordered_json::value_t::string: return QValue(j.get<std::string>());
    case ordered_json::value_t::array: {
        QList l;
        for (const auto &e : j) l.push_back(from_json(e));
        return QValue(std::move(l));
    }
    case ordered_json::value_t::object: {
        QDict d;
        for (const auto &[k, v] : j.items()) d.emplace_back(k, from_json(v));
        return QValue(std::move(d));
    }
    default: return QValue(nullptr);
    }
}

}  // namespace

std::string qvalue_to_json(const QValue &value) { return to_json(value).dump(); }

Result<QValue> qvalue_from_json(std::string_view text) {
    auto j = ordered_json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded())
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "cannot parse json " + std::string(text.substr(0, 200)));
    return from_json(j);
}

}  // namespace virtsnap::qemu
