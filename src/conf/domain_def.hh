// domain_def.hh - the libvirt <domain> definition as virtsnap models it.
//
// What the backend needs is modelled (identity, memory, vCPUs, OS boot, the
// devices it turns into a QEMU command line, and above all disks with their
// backing chains). Everything else - unknown elements and attributes anywhere
// in the document - is kept verbatim and written back in place, so a define
// followed by dumpxml loses nothing. Output follows libvirt's element order and
// layout byte for byte for the parts libvirt would print.
//
// Contract used by the snapshot, checkpoint and backup definitions and by the
// QEMU layer: the names below are stable; implementations may add members.
#pragma once

#include "util/result.hh"
#include "util/uuid.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <cstdint>
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
};

struct NetworkHost {
    std::string name, port, transport, socket;
};

// A disk's storage: <source> plus, through `backing`, the <backingStore> chain.
struct StorageSource {
    enum class Type { None, File, Block, Dir, Network, Volume, Nvme, VhostUser };
    Type type = Type::File;
    std::string path;                   // file= / dev= / dir=
    std::string protocol, name;         // network disks
    std::vector<NetworkHost> hosts;
    std::string format;                 // qcow2, raw ... ("" = unknown/probe)
    bool readonly = false;              // meaningful for backing layers
    std::optional<int> index;           // <backingStore index='N'> (status XML)
    std::unique_ptr<StorageSource> backing;
    bool backing_terminated = false;    // explicit empty <backingStore/>: chain ends here
    std::vector<VerbatimNode> source_extras;  // e.g. <seclabel>, <auth>, <reservations>
    std::map<std::string, std::string> source_extra_attrs;  // startupPolicy, index ...

    StorageSource() = default;
    StorageSource(const StorageSource &o);
    StorageSource &operator=(const StorageSource &o);
    StorageSource(StorageSource &&) = default;
    StorageSource &operator=(StorageSource &&) = default;

    bool is_local() const { return type == Type::File || type == Type::Block || type == Type::Dir; }
    bool empty() const { return path.empty() && name.empty(); }
};

std::string_view storage_type_name(StorageSource::Type t);
std::optional<StorageSource::Type> storage_type_from_name(std::string_view s);

struct DomainDisk {
    std::string device = "disk";        // disk | cdrom | floppy | lun
    StorageSource src;                  // src.format is <driver type=>
    std::string driver_name;            // <driver name='qemu'>
    std::vector<std::pair<std::string, std::string>> driver_attrs;  // cache, io, discard... in order
    std::string target_dev, target_bus;
    bool readonly = false, shareable = false, transient = false;
    std::string serial;
    std::optional<int> boot_order;
    std::string snapshot;               // <disk snapshot='no|internal|external|manual'> or ""
    std::string address_xml;            // <address .../> verbatim ("" = none)
    std::string alias;                  // runtime <alias name=> (status only)
    std::vector<VerbatimNode> extras;   // unknown children, in place
    std::map<std::string, std::string> extra_attrs;
};

// Devices other than disks are modelled as far as the command line needs;
// their full XML is kept so output is unchanged.
struct DomainDevice {
    std::string kind;                   // element name: controller, interface, serial, ...
    std::map<std::string, std::string> attrs;  // top-level attributes (type, model, index ...)
    std::string xml;                    // full element, libvirt layout, indent 0
};

struct OsDef {
    std::string type = "hvm", arch, machine;
    std::string firmware;               // <os firmware='efi'>
    std::string kernel, initrd, cmdline, dtb;
    std::string loader_path, loader_readonly, loader_type, loader_secure;
    std::string nvram_path, nvram_template;
    std::vector<std::string> boot_devs; // <boot dev=>
    std::vector<VerbatimNode> extras;   // bootmenu, smbios, ...
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

    DomainDef() = default;
    DomainDef(const DomainDef &) = default;
    DomainDef &operator=(const DomainDef &) = default;

    // Parses a <domain> document. Errors carry libvirt's codes (VIR_FROM_DOMAIN).
    [[nodiscard]] static Result<std::unique_ptr<DomainDef>> parse_string(std::string_view xml, unsigned flags);
    [[nodiscard]] static Result<std::unique_ptr<DomainDef>> parse_node(xml::Node root, unsigned flags);

    // Writes <domain ...> ... </domain> at the writer's indentation.
    void format(xml::Writer &w, unsigned flags) const;
    std::string format_string(unsigned flags) const;

    // Disk lookup as libvirt's virDomainDiskIndexByName: a name starting with
    // '/' matches the source path, otherwise the target dev. -1 if none/ambiguous.
    int disk_index_by_name(std::string_view name) const;
    const DomainDisk *disk_by_target(std::string_view dev) const;
    DomainDisk *disk_by_target(std::string_view dev);

    std::unique_ptr<DomainDef> clone() const { return std::make_unique<DomainDef>(*this); }
};

}  // namespace virtsnap::conf
