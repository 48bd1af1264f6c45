// xml_writer.cc - libvirt-layout XML text.

#include "util/xml_writer.hh"

#include <cstring>

namespace virtsnap::xml {

std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default:
            // libvirt drops control characters other than tab, newline and return.
            if (c >= 0x20 || c == '\n' || c == '\t' || c == '\r') out += ch;
        }
    }
    return out;
}

void Writer::pad() { out_.append(size_t(indent_ > 0 ? indent_ : 0), ' '); }

void Writer::attrs_to(std::string &out, const Attrs &attrs) {
    for (const auto &[k, v] : attrs) {
        if (!v) continue;
        out += ' ';
        out += k;
        out += "='";
        out += escape(*v);
        out += '\'';
    }
}

void Writer::open(std::string_view name, const Attrs &attrs) {
    pad();
    out_ += '<';
    out_ += name;
    attrs_to(out_, attrs);
    out_ += ">\n";
    indent_ += 2;
}

void Writer::close(std::string_view name) {
    indent_ -= 2;
    pad();
    out_ += "</";
    out_ += name;
    out_ += ">\n";
}

void Writer::empty(std::string_view name, const Attrs &attrs) {
    pad();
    out_ += '<';
    out_ += name;
    attrs_to(out_, attrs);
    out_ += "/>\n";
}

void Writer::text_element(std::string_view name, std::string_view text, const Attrs &attrs) {
    pad();
    out_ += '<';
    out_ += name;
    attrs_to(out_, attrs);
    out_ += '>';
    out_ += escape(text);
    out_ += "</";
    out_ += name;
    out_ += ">\n";
}

void Writer::line(std::string_view raw) {
    pad();
    out_ += raw;
    out_ += '\n';
}

void Writer::append_raw(std::string_view formatted) { out_ += formatted; }

namespace {

std::string qualified_name(const xmlNode *n) {
    std::string name;
    if (n->ns && n->ns->prefix) {
        name += reinterpret_cast<const char *>(n->ns->prefix);
        name += ':';
    }
    name += reinterpret_cast<const char *>(n->name);
    return name;
}

bool is_blank_text(const xmlNode *c) {
    if (c->type != XML_TEXT_NODE) return false;
    for (const xmlChar *p = c->content; p && *p; ++p)
        if (!std::strchr(" \t\r\n", *p)) return false;
    return true;
}

void node_attrs(std::string &out, const xmlNode *n) {
    for (const xmlNs *ns = n->nsDef; ns; ns = ns->next) {
        out += ns->prefix ? " xmlns:" : " xmlns";
        if (ns->prefix) out += reinterpret_cast<const char *>(ns->prefix);
        out += "='";
        out += escape(reinterpret_cast<const char *>(ns->href));
        out += '\'';
    }
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        out += ' ';
        if (a->ns && a->ns->prefix) {
            out += reinterpret_cast<const char *>(a->ns->prefix);
            out += ':';
        }
        out += reinterpret_cast<const char *>(a->name);
        out += "='";
        xmlChar *v = xmlNodeListGetString(a->doc, a->children, 1);
        if (v) {
            out += escape(reinterpret_cast<const char *>(v));
            xmlFree(v);
        }
        out += '\'';
    }
}

}  // namespace

void Writer::inline_node(std::string &out, const xmlNode *n) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        out += escape(reinterpret_cast<const char *>(n->content));
        return;
    }
    if (n->type == XML_COMMENT_NODE) {
        out += "<!--";
        out += reinterpret_cast<const char *>(n->content);
        out += "-->";
        return;
    }
    if (n->type != XML_ELEMENT_NODE) return;
    out += '<';
    out += qualified_name(n);
    node_attrs(out, n);
    if (!n->children) {
        out += "/>";
        return;
    }
    out += '>';
    for (const xmlNode *c = n->children; c; c = c->next) inline_node(out, c);
    out += "</";
    out += qualified_name(n);
    out += '>';
}

void Writer::node(const xmlNode *n) {
    if (n->type == XML_COMMENT_NODE) {
        pad();
        out_ += "<!--";
        out_ += reinterpret_cast<const char *>(n->content);
        out_ += "-->\n";
        return;
    }
    if (n->type != XML_ELEMENT_NODE) return;
    bool has_elements = false, has_text = false;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE || c->type == XML_COMMENT_NODE) has_elements = true;
        else if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && !is_blank_text(c))
            has_text = true;
    }
    pad();
    std::string name = qualified_name(n);
    out_ += '<';
    out_ += name;
    node_attrs(out_, n);
    if (!has_elements && !has_text) {
        out_ += "/>\n";
        return;
    }
    if (has_text) {
        // Mixed or text content: keep it on one line, exactly as given.
        out_ += '>';
        for (const xmlNode *c = n->children; c; c = c->next) inline_node(out_, c);
        out_ += "</" + name + ">\n";
        return;
    }
    out_ += ">\n";
    indent_ += 2;
    for (const xmlNode *c = n->children; c; c = c->next) node(c);
    indent_ -= 2;
    pad();
    out_ += "</" + name + ">\n";
}

Element::Element(Writer &parent, std::string_view name)
    : parent_(parent), name_(name), child_(parent.indent() + 2) {}

void Element::attr(std::string_view name, std::optional<std::string> value) {
    owned_names_.emplace_back(name);
    attrs_.emplace_back(std::string_view(), std::move(value));
    // Names are re-pointed at owned storage when finishing.
}

void Element::finish(bool always) {
    Attrs attrs;
    bool any_attr = false;
    for (size_t i = 0; i < attrs_.size(); ++i) {
        attrs.emplace_back(owned_names_[i], attrs_[i].second);
        if (attrs_[i].second) any_attr = true;
    }
    if (child_.empty_output()) {
        if (any_attr || always) parent_.empty(name_, attrs);
        return;
    }
    parent_.open(name_, attrs);
    parent_.append_raw(child_.str());
    parent_.close(name_);
}

}  // namespace virtsnap::xml
