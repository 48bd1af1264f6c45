// domain_xml_util.cc - the keep-it-verbatim and attribute-order helpers the
// domain parser and formatter share (see domain_xml_priv.hh).

#include "conf/domain_xml_priv.hh"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace virtsnap::conf::detail {

std::string attr_name(const xmlAttr *a) {
    std::string name;
    if (a->ns && a->ns->prefix) {
        name += reinterpret_cast<const char *>(a->ns->prefix);
        name += ':';
    }
    name += reinterpret_cast<const char *>(a->name);
    return name;
}

std::string attr_value(const xmlAttr *a) {
    XmlCharPtr v(xmlNodeListGetString(a->doc, a->children, 1));
    return v ? std::string(reinterpret_cast<const char *>(v.get())) : std::string();
}

AttrList attrs_except(xml::Node n, std::initializer_list<std::string_view> known) {
    AttrList out;
    for (const xmlAttr *a = n.raw()->properties; a; a = a->next) {
        std::string name = attr_name(a);
        bool is_known = false;
        for (auto k : known)
            if (k == name) is_known = true;
        if (!is_known) out.emplace_back(std::move(name), attr_value(a));
    }
    return out;
}

bool has_element_children(xml::Node n) {
    for (const xmlNode *c = n.raw()->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE) return true;
    return false;
}

std::string serialise(const xmlNode *n) {
    xml::Writer w(0);
    w.node(n);
    return w.take();
}

VerbatimNode make_verbatim(const ParseCtx &ctx, xml::Node n, std::string after, int ordinal) {
    VerbatimNode v;
    v.after = std::move(after);
    v.after_ordinal = ordinal;
    v.xml = serialise(n.raw());
    v.owner = ctx.owner;
    v.node = n.raw();
    return v;
}

void emit_indented(xml::Writer &w, std::string_view text) {
    // Fallback for hand-built nodes: prefix every line with the indentation.
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        w.line(text.substr(pos, nl - pos));
        pos = nl + 1;
    }
}

void emit_verbatim(xml::Writer &w, const VerbatimNode &v) {
    if (v.node) w.node(v.node);
    else emit_indented(w, v.xml);
}

void emit_after(xml::Writer &w, const std::vector<VerbatimNode> &extras, std::vector<bool> &done,
                std::string_view after, int ordinal) {
    for (size_t i = 0; i < extras.size(); ++i) {
        if (done[i] || extras[i].after != after || extras[i].after_ordinal != ordinal) continue;
        emit_verbatim(w, extras[i]);
        done[i] = true;
    }
}

void emit_rest(xml::Writer &w, const std::vector<VerbatimNode> &extras, std::vector<bool> &done) {
    for (size_t i = 0; i < extras.size(); ++i) {
        if (done[i]) continue;
        emit_verbatim(w, extras[i]);
        done[i] = true;
    }
}

void AttrBuilder::add(std::string_view name, std::optional<std::string> value) {
    if (!value) return;
    used_.emplace(name);
    out_.emplace_back(std::string(name), std::move(*value));
}

void AttrBuilder::extra(std::string_view name) {
    for (const auto &[k, v] : extras_)
        if (k == name && !used_.contains(k)) {
            used_.emplace(k);
            out_.emplace_back(k, v);
            return;
        }
}

xml::Attrs AttrBuilder::finish() {
    for (const auto &[k, v] : extras_)
        if (!used_.contains(k)) {
            used_.emplace(k);
            out_.emplace_back(k, v);
        }
    xml::Attrs attrs;
    for (const auto &[k, v] : out_) attrs.emplace_back(k, v);
    return attrs;
}

std::optional<unsigned long long> parse_ull(std::string_view s) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    unsigned long long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        unsigned d = unsigned(c - '0');
        if (v > (~0ULL - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

std::optional<unsigned long long> c_strtoul(const std::string &s, int base, bool reject_negative) {
    const char *begin = s.c_str();
    char *end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(begin, &end, base);
    if (errno || end == begin || *end) return std::nullopt;
    if (reject_negative && std::memchr(begin, '-', size_t(end - begin))) return std::nullopt;
    return v;
}

Unexpected invalid_attr(std::string_view attr, std::string_view element, std::string_view value) {
    return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                "Invalid value for attribute '" + std::string(attr) + "' in element '" +
                    std::string(element) + "': '" + std::string(value) + "'.");
}

}  // namespace virtsnap::conf::detail
