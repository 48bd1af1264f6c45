// xml_doc.hh - safe XML parsing and a small read-only node API over libxml2.
//
// Parsing never touches the network, never loads a DTD or external entity and
// never expands entities; documents are limited in size and depth. Parse errors
// come back as libvirt's XML_ERROR with the parser's line and message.
#pragma once

#include "util/raii.hh"
#include "util/result.hh"

#include <libxml/tree.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::xml {

inline constexpr size_t kMaxDocumentBytes = 10 * 1024 * 1024;
inline constexpr int kMaxDepth = 128;

// A borrowed element of a Document; valid while the Document lives.
class Node {
public:
    Node() = default;
    explicit Node(xmlNode *n) : node_(n) {}

    explicit operator bool() const { return node_ != nullptr; }
    xmlNode *raw() const { return node_; }
    std::string_view name() const;

    std::optional<std::string> attr(const char *name) const;
    bool has_attr(const char *name) const;
    // Concatenated text content of the element and its descendants.
    std::string text() const;

    // First child element with that name, or an empty Node.
    Node child(const char *name) const;
    // All child elements (with that name, when given), in document order.
    std::vector<Node> children(const char *name = nullptr) const;
    // Child text of the first <name> child, if that child exists.
    std::optional<std::string> child_text(const char *name) const;

    int line() const;

private:
    xmlNode *node_ = nullptr;
};

class Document {
public:
    Document() = default;
    explicit Document(XmlDocPtr doc) : doc_(std::move(doc)) {}
    Node root() const { return Node(xmlDocGetRootElement(doc_.get())); }
    xmlDoc *raw() const { return doc_.get(); }
    // Hands the document over, e.g. to definitions that keep its nodes.
    XmlDocPtr release() { return std::move(doc_); }

private:
    XmlDocPtr doc_;
};

// Parses a document. `what` names the input in errors (a file name or "(string)").
// `error_domain` is the libvirt error domain reported on failure.
[[nodiscard]] Result<Document> parse(std::string_view text, std::string_view what,
                                     virErrorDomain error_domain);

// Parses and checks that the root element is `root` (libvirt's wording on mismatch).
[[nodiscard]] Result<Document> parse_with_root(std::string_view text, std::string_view what,
                                               const char *root, virErrorDomain error_domain);

// Validates a document against a RelaxNG schema file (XML_INVALID_SCHEMA on failure).
[[nodiscard]] Status validate_rng(const Document &doc, const std::string &schema_path,
                                  virErrorDomain error_domain);

// Directory holding libvirt's RNG schemas (VIRTSNAP_SCHEMA_DIR or Debian's location).
std::string schema_dir();

}  // namespace virtsnap::xml
