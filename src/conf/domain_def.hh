// domain_def.hh - the libvirt <domain> definition as virtsnap models it.
//
// What the backend needs is modelled (identity, memory, vCPUs, OS boot, the
// devices it turns into a QEMU command line, and above all disks with their
// backing chains). Everything else - unknown elements and attributes anywhere
// in the document - is kept verbatim and written back in place, so a define
// followed by dumpxml loses nothing. Output follows libvirt's element order and
// layout byte for byte for the parts libvirt would print.
//
// As libvirt, only the first of a modelled element counts and repeats are
// dropped; a modelled text element (<name>, <memory> ...) is read as its string
// value, so markup inside it contributes only its text. Formatting is a fixed
// point: parsing what format writes gives the same bytes again.
//
// Contract used by the snapshot, checkpoint and backup definitions and by the
// QEMU layer: the names below are stable; implementations may add members.
#pragma once

#include "util/result.hh"
#include "util/uuid.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <cstdint>
#include <libxml/tree.h>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace virtsnap::conf {

// Parse flags (subset of libvirt's VIR_DOMAIN_DEF_PARSE_*).
enum DomainParseFlags : unsigned {
    kDomainParseInactive = 1u << 0,    // ignore runtime-only state (ids, aliases)
    kDomainParseStatus = 1u << 1,      // status XML: keep runtime state
    kDomainParseValidate = 1u << 2,    // validate against domain.rng first
    kDomainParseSkipValidate = 1u << 3,
};

// Format flags (libvirt's VIR_DOMAIN_DEF_FORMAT_* / VIR_DOMAIN_XML_*).
enum DomainFormatFlags : unsigned {
    kDomainFormatSecure = 1u << 0,     // include passwords
    kDomainFormatInactive = 1u << 1,   // no id, no runtime-only data
    kDomainFormatMigratable = 1u << 2,
    kDomainFormatStatus = 1u << 3,
};

// One element kept verbatim (an element virtsnap does not model), remembered
// with the modelled sibling it followed so it is written back in place.
struct VerbatimNode {
    std::string after;   // name of the modelled element it followed ("" = first)
    std::string xml;     // the element serialised in libvirt layout, indent 0
    // Which occurrence of `after` it followed (0-based), for repeated elements
    // such as devices; 0 for elements that occur once.
    int after_ordinal = 0;
    // The parsed element itself, in a private copy of the input document that
    // every verbatim node of one parse shares; lets it be re-emitted at any
    // indentation exactly. When null (a node built by hand), `xml` is used.
    std::shared_ptr<xmlDoc> owner;
    const xmlNode *node = nullptr;
};

// Attributes kept in document order (unknown attributes of modelled elements).
using AttrList = std::vector<std::pair<std::string, std::string>>;

struct NetworkHost {
    std::string name, port, transport, socket;
};

// libvirt's virPCIDeviceAddress (domain:bus:slot.function).
struct PciAddress {
    unsigned domain = 0, bus = 0, slot = 0, function = 0;
};

// The <source> of a type='nvme' disk (libvirt's virStorageSourceNVMeDef):
// <source type='pci' managed='yes' namespace='1'><address .../></source>.
struct NvmeSource {
    std::string managed;                // "yes" | "no" | "" (absent)
    unsigned long long namespace_id = 0;
    PciAddress address;
    AttrList address_extra_attrs;       // unknown attributes of <address>, in order
    std::vector<VerbatimNode> address_children;  // e.g. <zpci>, kept verbatim
};

// A disk's storage: <source> plus, through `backing`, the <backingStore> chain.
struct StorageSource {
    enum class Type { None, File, Block, Dir, Network, Volume, Nvme, VhostUser };
    Type type = Type::File;
    std::string path;                   // file= / dev= / dir=
    std::string protocol, name;         // network disks
    std::vector<NetworkHost> hosts;
    std::string pool, volume;           // type='volume' sources
    std::optional<NvmeSource> nvme;     // type='nvme' with a <source>
    std::optional<std::string> vhostuser_path;  // type='vhostuser': <source type='unix' path=>
    std::string format;                 // qcow2, raw ... ("" = unknown/probe)
    bool readonly = false;              // meaningful for backing layers
    std::optional<int> index;           // <backingStore index='N'> (status XML)
    std::unique_ptr<StorageSource> backing;
    bool backing_terminated = false;    // explicit empty <backingStore/>: chain ends here
    std::vector<VerbatimNode> source_extras;  // e.g. <seclabel>, <auth>, <reservations>
    AttrList source_extra_attrs;        // startupPolicy, index ... in document order
    AttrList backing_extra_attrs;       // unknown attributes of this layer's <backingStore>
    std::vector<VerbatimNode> backing_extras;  // unknown children of this layer's <backingStore>

    StorageSource() = default;
    StorageSource(const StorageSource &o);
    StorageSource &operator=(const StorageSource &o);
    StorageSource(StorageSource &&) = default;
    StorageSource &operator=(StorageSource &&) = default;

    bool is_local() const { return type == Type::File || type == Type::Block || type == Type::Dir; }
    // As virStorageSourceIsEmpty for what virtsnap uses: an NVMe or vhost-user
    // disk always names its storage.
    bool empty() const {
        if (type == Type::Nvme || type == Type::VhostUser) return false;
        return path.empty() && name.empty();
    }
};

std::string_view storage_type_name(StorageSource::Type t);
std::optional<StorageSource::Type> storage_type_from_name(std::string_view s);

struct DomainDisk {
    std::string device = "disk";        // disk | cdrom | floppy | lun
    StorageSource src;                  // src.format is <driver type=>
    std::string driver_name;            // <driver name='qemu'>
    std::vector<std::pair<std::string, std::string>> driver_attrs;  // cache, io, discard... in order
    std::vector<VerbatimNode> driver_children;   // <metadata_cache>, <iothreads> inside <driver>
    std::string target_dev, target_bus;
    AttrList target_extra_attrs;        // tray, removable, rotation_rate ...
    bool readonly = false, shareable = false, transient = false;
    std::string serial;
    std::optional<int> boot_order;
    AttrList boot_extra_attrs;          // loadparm
    std::string snapshot;               // <disk snapshot='no|internal|external|manual'> or ""
    std::string address_xml;            // <address .../> verbatim ("" = none)
    std::string alias;                  // runtime <alias name=> (status only)
    std::vector<VerbatimNode> extras;   // unknown children, in place
    AttrList extra_attrs;               // unknown <disk> attributes, in document order
};

// Devices other than disks are modelled as far as the command line needs;
// their full XML is kept so output is unchanged.
struct DomainDevice {
    std::string kind;                   // element name: controller, interface, serial, ...
    std::map<std::string, std::string> attrs;  // top-level attributes (type, model, index ...)
    std::string xml;                    // full element, libvirt layout, indent 0
    // Added: attributes in document order, and the parsed element (see
    // VerbatimNode) so it is re-emitted exactly; graphics passwords are
    // dropped on output unless kDomainFormatSecure.
    AttrList attr_list;
    std::shared_ptr<xmlDoc> owner;
    const xmlNode *node = nullptr;
};

struct OsDef {
    std::string type = "hvm", arch, machine;
    std::string firmware;               // <os firmware='efi'>
    std::string kernel, initrd, cmdline, dtb;
    std::string loader_path, loader_readonly, loader_type, loader_secure;
    std::string nvram_path, nvram_template;
    std::vector<std::string> boot_devs; // <boot dev=>
    std::vector<VerbatimNode> extras;   // bootmenu, smbios, ...
    AttrList os_attrs, type_extra_attrs, loader_extra_attrs, nvram_extra_attrs;
};

class DomainDef {
public:
    std::string type = "qemu";          // <domain type=> qemu | kvm
    int id = -1;                        // runtime id, -1 when inactive
    std::string name;
    Uuid uuid;
    std::string title, description;
    std::string metadata_xml;           // <metadata> subtree, libxml2 dump (double quotes, as libvirt)
    uint64_t max_memory_kib = 0;        // <memory>
    uint64_t current_memory_kib = 0;    // <currentMemory>
    unsigned vcpus = 1;                 // <vcpu>
    std::optional<unsigned> vcpus_current;
    std::string vcpu_placement;
    OsDef os;
    std::string features_xml, cpu_xml, clock_xml;   // verbatim blocks ("" = absent)
    std::string on_poweroff, on_reboot, on_crash;
    std::string emulator;
    std::vector<DomainDisk> disks;
    std::vector<DomainDevice> devices;  // non-disk devices in document order
    std::vector<VerbatimNode> extras;   // unknown top-level elements, in place
    std::vector<VerbatimNode> device_extras;  // unknown device elements, in place

    // Added members (not in the first contract).
    AttrList root_extra_attrs;          // xmlns:* declarations and unknown <domain> attributes
    AttrList memory_extra_attrs, current_memory_extra_attrs, vcpu_extra_attrs;
    std::string vcpu_cpuset;
    VerbatimNode features, cpu, clock;  // parsed forms of features_xml/cpu_xml/clock_xml
    std::shared_ptr<xmlDoc> metadata_owner;   // sanitised <metadata> for exact re-dump
    const xmlNode *metadata_node = nullptr;   // used while metadata_xml is unchanged
    std::string metadata_dump;          // metadata_xml as produced by the parse
    // Unknown attributes of <name>, <uuid>, <title>, <description> and <on_*>,
    // by element name, in document order.
    std::map<std::string, AttrList, std::less<>> text_extra_attrs;

    DomainDef() = default;
    DomainDef(const DomainDef &) = default;
    DomainDef &operator=(const DomainDef &) = default;

    // Parses a <domain> document. Errors carry libvirt's codes (VIR_FROM_DOMAIN).
    [[nodiscard]] static Result<std::unique_ptr<DomainDef>> parse_string(std::string_view xml, unsigned flags);
    [[nodiscard]] static Result<std::unique_ptr<DomainDef>> parse_node(xml::Node root, unsigned flags);
    // The same for a `root` inside `owner`, which the definition keeps alive
    // instead of copying what it keeps verbatim (the copy dominated the cost
    // of parsing, and the memory of every snapshot held in memory).
    [[nodiscard]] static Result<std::unique_ptr<DomainDef>> parse_node(xml::Node root, unsigned flags,
                                                                       std::shared_ptr<xmlDoc> owner);

    // Writes <domain ...> ... </domain> at the writer's indentation.
    // `root_name` replaces the element name, e.g. "inactiveDomain" inside a
    // <domainsnapshot> (libvirt writes the same content under that name).
    void format(xml::Writer &w, unsigned flags, std::string_view root_name = "domain") const;
    std::string format_string(unsigned flags) const;

    // Disk lookup as libvirt's virDomainDiskIndexByName: a name starting with
    // '/' matches the source path, otherwise the target dev. -1 if none/ambiguous.
    int disk_index_by_name(std::string_view name) const;
    const DomainDisk *disk_by_target(std::string_view dev) const;
    DomainDisk *disk_by_target(std::string_view dev);

    std::unique_ptr<DomainDef> clone() const { return std::make_unique<DomainDef>(*this); }
};

}  // namespace virtsnap::conf
