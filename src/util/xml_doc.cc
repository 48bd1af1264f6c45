// xml_doc.cc - libxml2 behind a safe parse and a borrowed-node API.

#include "util/xml_doc.hh"

#include <libxml/parser.h>
#include <libxml/relaxng.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace virtsnap::xml {

namespace {

struct ParseErrors {
    std::string first;
    int line = 0;
};

void collect_error(void *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void collect_error(void *ctx, const char *fmt, ...) {
    auto *errs = static_cast<ParseErrors *>(ctx);
    if (!errs->first.empty()) return;
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    errs->first = buf;
    while (!errs->first.empty() && (errs->first.back() == '\n' || errs->first.back() == ' '))
        errs->first.pop_back();
}

int depth_of(xmlNode *n, int depth) {
    if (depth > kMaxDepth) return depth;
    int max = depth;
    for (xmlNode *c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE) {
            int d = depth_of(c, depth + 1);
            if (d > max) max = d;
            if (max > kMaxDepth) break;
        }
    return max;
}

}  // namespace

std::string_view Node::name() const {
    return node_ ? std::string_view(reinterpret_cast<const char *>(node_->name)) : std::string_view();
}

std::optional<std::string> Node::attr(const char *name) const {
    if (!node_) return std::nullopt;
    XmlCharPtr v(xmlGetNoNsProp(node_, reinterpret_cast<const xmlChar *>(name)));
    if (!v) return std::nullopt;
    return std::string(reinterpret_cast<const char *>(v.get()));
}

bool Node::has_attr(const char *name) const {
    return node_ && xmlHasProp(node_, reinterpret_cast<const xmlChar *>(name)) != nullptr;
}

std::string Node::text() const {
    if (!node_) return {};
    XmlCharPtr v(xmlNodeGetContent(node_));
    return v ? std::string(reinterpret_cast<const char *>(v.get())) : std::string();
}

Node Node::child(const char *name) const {
    if (!node_) return Node();
    for (xmlNode *c = node_->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && std::strcmp(reinterpret_cast<const char *>(c->name), name) == 0)
            return Node(c);
    return Node();
}

std::vector<Node> Node::children(const char *name) const {
    std::vector<Node> out;
    if (!node_) return out;
    for (xmlNode *c = node_->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE &&
            (!name || std::strcmp(reinterpret_cast<const char *>(c->name), name) == 0))
            out.emplace_back(c);
    return out;
}

std::optional<std::string> Node::child_text(const char *name) const {
    Node c = child(name);
    if (!c) return std::nullopt;
    return c.text();
}

int Node::line() const { return node_ ? int(xmlGetLineNo(node_)) : 0; }

Result<Document> parse(std::string_view text, std::string_view what, virErrorDomain error_domain) {
    if (text.size() > kMaxDocumentBytes)
        return fail(VIR_ERR_XML_ERROR, error_domain,
                    std::string(what) + ": document larger than " + std::to_string(kMaxDocumentBytes) +
                        " bytes");
    ParseErrors errs;
    std::unique_ptr<xmlParserCtxt, CFree<xmlFreeParserCtxt>> ctxt(xmlNewParserCtxt());
    if (!ctxt) return fail(VIR_ERR_NO_MEMORY, error_domain, "");
    xmlSetGenericErrorFunc(&errs, collect_error);
    // NONET: no network; no NOENT (entities stay unexpanded); no DTDLOAD/DTDATTR.
    // Without XML_PARSE_HUGE libxml2 also caps text node size and nesting.
    int opts = XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_NOERROR;
    std::string name(what);
    XmlDocPtr doc(xmlCtxtReadMemory(ctxt.get(), text.data(), int(text.size()), name.c_str(), nullptr, opts));
    xmlSetGenericErrorFunc(nullptr, nullptr);
    if (!doc || !xmlDocGetRootElement(doc.get())) {
        const xmlError *e = xmlCtxtGetLastError(ctxt.get());
        std::string msg = e && e->message ? e->message : errs.first;
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        if (msg.empty()) msg = "failed to parse xml document";
        int line = e ? e->line : 0;
        return fail(VIR_ERR_XML_DETAIL, error_domain, name + ":" + std::to_string(line) + ": " + msg);
    }
    if (doc->intSubset || doc->extSubset)
        return fail(VIR_ERR_XML_ERROR, error_domain, name + ": document type declarations are not allowed");
    if (depth_of(xmlDocGetRootElement(doc.get()), 1) > kMaxDepth)
        return fail(VIR_ERR_XML_ERROR, error_domain,
                    name + ": elements nested deeper than " + std::to_string(kMaxDepth) + " levels");
    return Document(std::move(doc));
}

Result<Document> parse_with_root(std::string_view text, std::string_view what, const char *root,
                                 virErrorDomain error_domain) {
    Document doc = TRY(parse(text, what, error_domain));
    if (doc.root().name() != root)
        return fail(VIR_ERR_XML_ERROR, error_domain,
                    "expecting root element of '" + std::string(root) + "', not '" +
                        std::string(doc.root().name()) + "'");
    return doc;
}

std::string schema_dir() {
    const char *env = std::getenv("VIRTSNAP_SCHEMA_DIR");
    return env && *env ? env : "/usr/share/libvirt/schemas";
}

Status validate_rng(const Document &doc, const std::string &schema_path, virErrorDomain error_domain) {
    ParseErrors errs;
    std::unique_ptr<xmlRelaxNGParserCtxt, CFree<xmlRelaxNGFreeParserCtxt>> pctxt(
        xmlRelaxNGNewParserCtxt(schema_path.c_str()));
    if (!pctxt) return fail(VIR_ERR_INTERNAL_ERROR, error_domain, "cannot load schema " + schema_path);
    xmlRelaxNGSetParserErrors(pctxt.get(), collect_error, collect_error, &errs);
    std::unique_ptr<xmlRelaxNG, CFree<xmlRelaxNGFree>> schema(xmlRelaxNGParse(pctxt.get()));
    if (!schema)
        return fail(VIR_ERR_INTERNAL_ERROR, error_domain,
                    "Unable to parse RNG " + schema_path + ": " + errs.first);
    std::unique_ptr<xmlRelaxNGValidCtxt, CFree<xmlRelaxNGFreeValidCtxt>> vctxt(xmlRelaxNGNewValidCtxt(schema.get()));
    ParseErrors verrs;
    xmlRelaxNGSetValidErrors(vctxt.get(), collect_error, collect_error, &verrs);
    if (xmlRelaxNGValidateDoc(vctxt.get(), doc.raw()) != 0)
        return fail(VIR_ERR_XML_INVALID_SCHEMA, error_domain,
                    "Unable to validate doc against " + schema_path + "\n" + verrs.first);
    return ok();
}

}  // namespace virtsnap::xml
