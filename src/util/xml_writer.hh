// xml_writer.hh - builds XML text in libvirt's layout.
//
// libvirt formats by hand (virBuffer): two spaces per level, one element per
// line, single-quoted attributes, empty elements self-closed, and its own
// escaping (' -> &apos;, " -> &quot;, control characters dropped). Everything
// virtsnap returns to a client is built with this class so it matches byte for byte.
#pragma once

#include <libxml/tree.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virtsnap::xml {

// libvirt's virBufferEscapeString rules, for text and attribute values.
std::string escape(std::string_view text);

// An attribute list; entries whose value is nullopt are skipped, so callers can
// write optional attributes inline.
using Attrs = std::vector<std::pair<std::string_view, std::optional<std::string>>>;

class Writer {
public:
    explicit Writer(int indent = 0) : indent_(indent) {}

    // <name attrs>  and one level deeper.
    void open(std::string_view name, const Attrs &attrs = {});
    // One level back, </name>.
    void close(std::string_view name);
    // <name attrs/>
    void empty(std::string_view name, const Attrs &attrs = {});
    // <name attrs>escaped text</name>
    void text_element(std::string_view name, std::string_view text, const Attrs &attrs = {});
    // A line of already formatted text at the current indentation.
    void line(std::string_view raw);
    // Appends text formatted by another writer (already indented) verbatim.
    void append_raw(std::string_view formatted);
    // Re-emits a parsed element (kept verbatim from input) in this layout.
    void node(const xmlNode *n);

    int indent() const { return indent_; }
    void adjust_indent(int delta) { indent_ += delta; }
    const std::string &str() const { return out_; }
    std::string take() { return std::move(out_); }
    bool empty_output() const { return out_.empty(); }

private:
    void pad();
    void attrs_to(std::string &out, const Attrs &attrs);
    void inline_node(std::string &out, const xmlNode *n);

    std::string out_;
    int indent_ = 0;
};

// libvirt's virXMLFormatElement: an element whose attributes and children are
// collected first, then written self-closed when there are no children, and
// omitted entirely when it has neither.
class Element {
public:
    Element(Writer &parent, std::string_view name);
    void attr(std::string_view name, std::optional<std::string> value);
    // A writer for the children, one level deeper than the element.
    Writer &children() { return child_; }
    // Writes the element into the parent; `always` keeps an element with nothing in it.
    void finish(bool always = false);

private:
    Writer &parent_;
    std::string name_;
    Attrs attrs_;
    std::vector<std::string> owned_names_;
    Writer child_;
};

}  // namespace virtsnap::xml
