// domain_xml_priv.hh - helpers shared by the files that parse and format the
// <domain> definition (domain_def.cc, domain_disk.cc, domain_device.cc,
// storage_source.cc). Not part of the conf API.
//
// The common idea: what is modelled is parsed into fields and written back in
// libvirt's order; everything else is kept as the parsed element (a
// VerbatimNode pointing into a private copy of the input document) and written
// back after the modelled sibling it followed.
#pragma once

#include "conf/domain_def.hh"

#include <initializer_list>
#include <set>
#include <string>
#include <string_view>

namespace virtsnap::conf::detail {

struct ParseCtx {
    std::shared_ptr<xmlDoc> owner;   // the private copy every VerbatimNode points into
    unsigned flags = 0;
};

// Qualified attribute name ("prefix:name" for namespaced attributes).
std::string attr_name(const xmlAttr *a);
std::string attr_value(const xmlAttr *a);

// All attributes of `n` whose names are not in `known`, in document order.
AttrList attrs_except(xml::Node n, std::initializer_list<std::string_view> known);

// True when the element has child elements (comments and blank text ignored).
bool has_element_children(xml::Node n);

VerbatimNode make_verbatim(const ParseCtx &ctx, xml::Node n, std::string after, int ordinal = 0);
// Serialises one element in libvirt layout at indentation 0.
std::string serialise(const xmlNode *n);

// Writes a kept element at the writer's indentation.
void emit_verbatim(xml::Writer &w, const VerbatimNode &v);
// Writes text formatted at indentation 0 (as VerbatimNode::xml) at the writer's indentation.
void emit_indented(xml::Writer &w, std::string_view text);
// Writes every kept element anchored after (`after`, `ordinal`) and marks it written.
void emit_after(xml::Writer &w, const std::vector<VerbatimNode> &extras, std::vector<bool> &done,
                std::string_view after, int ordinal = 0);
// Writes those not written yet (their anchor vanished), in order.
void emit_rest(xml::Writer &w, const std::vector<VerbatimNode> &extras, std::vector<bool> &done);

// Builds an attribute list: modelled attributes added in libvirt's order, and
// unknown ones either pulled to their libvirt position (`extra`) or appended
// at the end (`finish`).
class AttrBuilder {
public:
    explicit AttrBuilder(const AttrList &extras) : extras_(extras) {}
    void add(std::string_view name, std::optional<std::string> value);
    void extra(std::string_view name);
    xml::Attrs finish();

private:
    const AttrList &extras_;
    std::set<std::string, std::less<>> used_;
    std::vector<std::pair<std::string, std::string>> out_;
};

// Strict unsigned decimal (no sign, no spaces).
std::optional<unsigned long long> parse_ull(std::string_view s);
// libvirt's virStrToLong_ull (reject_negative false: "-1" wraps, as strtoull
// does) and virStrToLong_uip (reject_negative true): C strtoull in `base`
// (0 = C prefixes), leading white space allowed, nothing may follow.
std::optional<unsigned long long> c_strtoul(const std::string &s, int base, bool reject_negative);

// libvirt's "Invalid value for attribute '%s' in element '%s': '%s'." (VIR_FROM_XML).
Unexpected invalid_attr(std::string_view attr, std::string_view element, std::string_view value);

// Disk and storage source parts (domain_disk.cc, storage_source.cc).
[[nodiscard]] Result<DomainDisk> parse_disk(const ParseCtx &ctx, xml::Node n);
void format_disk(xml::Writer &w, const DomainDisk &d, unsigned flags);
[[nodiscard]] Status parse_source(const ParseCtx &ctx, xml::Node n, StorageSource &src);
void format_source(xml::Writer &w, const StorageSource &src, unsigned flags);
[[nodiscard]] Status parse_backing_store(const ParseCtx &ctx, xml::Node n, StorageSource &parent);
void format_backing_chain(xml::Writer &w, const StorageSource &top, unsigned flags);

// Non-disk devices (domain_device.cc).
int device_rank(std::string_view kind);   // libvirt's output order; -1 = not a device libvirt knows
DomainDevice parse_device(const ParseCtx &ctx, xml::Node n);
void format_device(xml::Writer &w, const DomainDevice &d, unsigned flags);

}  // namespace virtsnap::conf::detail
