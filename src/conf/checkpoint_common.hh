// checkpoint_common.hh - small readers shared by the checkpoint and backup
// definitions: libvirt's XPath value conventions and storage-source tests.
//
// libvirt reads most values through virXPathString / virXPathLongLong, whose
// quirks (an empty result counts as absent, numbers must use the whole string)
// decide what a document means, so they are reproduced once here.
#pragma once

#include "conf/domain_def.hh"
#include "util/result.hh"
#include "util/xml_doc.hh"

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>

namespace virtsnap::conf::cpcommon {

// virXPathString("string(./x)"): the text of the element, absent when the
// element is missing or its text is empty.
inline std::optional<std::string> xpath_string(xml::Node n) {
    if (!n) return std::nullopt;
    std::string s = n.text();
    if (s.empty()) return std::nullopt;
    return s;
}

// virXPathLongLong: base 10, the whole string must be a number in range.
inline std::optional<long long> xpath_long_long(xml::Node n) {
    auto s = xpath_string(n);
    if (!s) return std::nullopt;
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(s->c_str(), &end, 10);
    if (errno != 0 || end == s->c_str() || *end != '\0') return std::nullopt;
    return v;
}

// virXMLParse's root check, reported from libvirt's XML error domain.
inline Status expect_root(const xml::Document &doc, const char *root) {
    if (doc.root().name() != root)
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                    "expecting root element of '" + std::string(root) + "', not '" +
                        std::string(doc.root().name()) + "'");
    return ok();
}

// virStorageSourceIsEmpty: a local source without a path, no source at all,
// or a network source without a protocol.
inline bool source_is_empty(const StorageSource &src) {
    if (src.is_local() && src.path.empty()) return true;
    if (src.type == StorageSource::Type::None) return true;
    if (src.type == StorageSource::Type::Network && src.protocol.empty()) return true;
    return false;
}

// A disk whose medium is missing or read-only takes no bitmap and no backup.
inline bool disk_unusable(const DomainDisk &disk) {
    return source_is_empty(disk.src) || disk.readonly || disk.src.readonly;
}

}  // namespace virtsnap::conf::cpcommon
