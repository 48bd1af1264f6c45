// snapshot_disk_def.hh - one <disk> of a <domainsnapshot>'s <disks>.
//
// Mirrors libvirt's virDomainSnapshotDiskDef: the disk's name (a target dev or,
// before alignment, a source path), where its snapshot goes, and for external
// snapshots the overlay's storage (<driver> and <source>). The source keeps what
// libvirt formats back: path or network name and hosts, seclabels, tls/query;
// any other source child (auth, encryption, reservations, ...) is kept verbatim.
#pragma once

#include "conf/domain_def.hh"
#include "util/result.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::conf {

// virDomainSnapshotLocation; Default is "not given" and is never written.
enum class SnapshotLocation { Default = 0, No, Internal, External, Manual };

std::string_view snapshot_location_name(SnapshotLocation loc);
// Accepts "no", "internal", "external", "manual" ("default" names the zero value).
std::optional<SnapshotLocation> snapshot_location_from_name(std::string_view s);

// A <seclabel> inside a snapshot disk's <source> (virSecurityDeviceLabelDef).
struct SnapshotSeclabel {
    std::optional<std::string> model;
    bool relabel = true;
    bool labelskip = false;
    std::optional<std::string> label;
    bool operator==(const SnapshotSeclabel &) const = default;
};

struct SnapshotDiskDef {
    std::string name;                   // target dev after alignment
    SnapshotLocation snapshot = SnapshotLocation::Default;
    bool delete_in_progress = false;    // <snapshotDeleteInProgress/> (metadata only)

    // The overlay's storage; only written when it has a path or a format.
    StorageSource::Type type = StorageSource::Type::File;
    std::string path;                   // file= / dev= ; network: name=
    std::string protocol;               // network only
    std::optional<std::string> tls, query;  // network only
    std::vector<NetworkHost> hosts;
    std::vector<SnapshotSeclabel> seclabels;
    // Other <source> children, in input order, in libvirt layout at the depth
    // they have inside a <domainsnapshot> (8 spaces).
    std::vector<std::string> source_extras;
    std::string driver_type;            // <driver type=> (image format), "" = none
    uint64_t metadata_cache_max_size = 0;  // bytes, 0 = not set

    bool has_source_path() const { return !path.empty(); }

    // virDomainSnapshotDiskDefParseXML. `flags` are SnapshotParseFlags.
    [[nodiscard]] static Result<SnapshotDiskDef> parse(xml::Node node, unsigned flags);
    // virDomainSnapshotDiskDefFormat: nothing for a disk without name.
    void format(xml::Writer &w) const;
};

std::string_view snapshot_disk_type_name(StorageSource::Type t);

}  // namespace virtsnap::conf
