// snapshot_def.hh - the libvirt <domainsnapshot> definition.
//
// Mirrors virDomainSnapshotDef of libvirt 9.0 (snapshot_conf.c): what a client
// sends to virDomainSnapshotCreateXML, what dumpxml returns, and the metadata
// file kept per snapshot (the "internal" format: <active>, the full <domain>,
// <inactiveDomain>, <cookie>, <snapshotDeleteInProgress/>). Parsing follows
// libvirt's order of checks so the first error reported is libvirt's; output is
// byte-for-byte libvirt's.
//
// Disk alignment against a domain lives in snapshot_align.hh, the create-flag
// checks in snapshot_flags.hh.
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_disk_def.hh"
#include "util/result.hh"
#include "util/uuid.hh"
#include "util/xml_writer.hh"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::conf {

// virDomainSnapshotParseFlags (snapshot_conf.h, 9.0).
enum SnapshotParseFlags : unsigned {
    kSnapshotParseRedefine = 1u << 0,  // name, state, creationTime required; domain parsed
    kSnapshotParseInternal = 1u << 1,  // metadata file: <active> required
    kSnapshotParseOffline = 1u << 2,   // disk-only or inactive domain: no memory state
    kSnapshotParseValidate = 1u << 3,  // validate against domainsnapshot.rng first
};

// virDomainSnapshotFormatFlags.
enum SnapshotFormatFlags : unsigned {
    kSnapshotFormatSecure = 1u << 0,    // secure data of the embedded domains
    kSnapshotFormatInternal = 1u << 1,  // metadata file: write <active>
    kSnapshotFormatCurrent = 1u << 2,   // with Internal: <active>1</active>
};

// virDomainSnapshotState: virDomainState plus disk-snapshot.
enum class SnapshotState {
    NoState = 0, Running, Blocked, Paused, Shutdown, Shutoff, Crashed, PmSuspended, DiskSnapshot
};

std::string_view snapshot_state_name(SnapshotState s);
std::optional<SnapshotState> snapshot_state_from_name(std::string_view s);

class SnapshotDef;

// Runs after a non-redefine parse (libvirt's moment post-parse callback). The
// default sets creationTime to now and, without a name, the name to that time.
using MomentPostParse = std::function<Status(SnapshotDef &)>;

class SnapshotDef {
public:
    std::string name;                   // "" = none (libvirt: NULL)
    std::string description;
    std::string parent_name;            // <parent><name>
    SnapshotState state = SnapshotState::NoState;
    // Seconds since the epoch. libvirt skips a zero time on output, so a
    // redefined snapshot created at 0 could never be read back; virtsnap writes
    // any time that is set (nothing differs for non-zero times).
    std::optional<int64_t> creation_time;
    SnapshotLocation memory = SnapshotLocation::Default;
    std::string memory_file;            // "" = none
    std::vector<SnapshotDiskDef> disks;
    std::unique_ptr<DomainDef> domain;           // full <domain> (redefine/metadata)
    std::unique_ptr<DomainDef> inactive_domain;  // <inactiveDomain>
    // The uuid of an old-style <domain><uuid/></domain> (no type). libvirt
    // ignores it; output always takes the uuid from the caller. Kept for callers.
    std::optional<Uuid> legacy_domain_uuid;
    // Children of <cookie> in libvirt layout at depth 2 ("    <cpu ..."), or
    // nullopt when there is no cookie. Kept verbatim.
    std::optional<std::string> cookie;
    bool current = false;               // <active> of a metadata file

    SnapshotDef() = default;
    SnapshotDef(const SnapshotDef &o);
    SnapshotDef &operator=(const SnapshotDef &o);
    SnapshotDef(SnapshotDef &&) = default;
    SnapshotDef &operator=(SnapshotDef &&) = default;

    // virDomainSnapshotDefParseString. `post_parse` replaces the default
    // post-parse step (tests pin the creation time with it).
    [[nodiscard]] static Result<std::unique_ptr<SnapshotDef>> parse_string(
        std::string_view xml, unsigned flags, const MomentPostParse &post_parse = {});
    [[nodiscard]] static Result<std::unique_ptr<SnapshotDef>> parse_node(
        xml::Node root, unsigned flags, const MomentPostParse &post_parse = {});
    // The same for a `root` inside `owner`: its domain definitions keep the
    // document instead of copying it.
    [[nodiscard]] static Result<std::unique_ptr<SnapshotDef>> parse_node(
        xml::Node root, unsigned flags, const MomentPostParse &post_parse, std::shared_ptr<xmlDoc> owner);

    // virDomainSnapshotDefFormat. `domain_uuid` is written as <domain><uuid>
    // when there is no full domain (libvirt's uuidstr argument).
    std::string format(const std::optional<Uuid> &domain_uuid, unsigned flags) const;
    void format(xml::Writer &w, const std::optional<Uuid> &domain_uuid, unsigned flags) const;

    // virDomainSnapshotDefIsExternal: external memory or any external disk.
    bool is_external() const;

    std::unique_ptr<SnapshotDef> clone() const { return std::make_unique<SnapshotDef>(*this); }
};

// The default post-parse step: creationTime = now, name = that time if unset.
[[nodiscard]] Status snapshot_default_post_parse(SnapshotDef &def);

// The comment libvirt's virXMLSaveFile puts before a snapshot metadata file.
std::string snapshot_metadata_warning();

// The complete text of <snapshotDir>/<domain>/<name>.xml as the qemu driver
// writes it: the warning, then the internal format (SECURE|INTERNAL, plus
// CURRENT when `current`).
std::string snapshot_metadata_file_text(const SnapshotDef &def, const Uuid &domain_uuid, bool current);

// Reads such a file back (PARSE_REDEFINE|PARSE_INTERNAL); `current` of the
// result is the file's <active>.
[[nodiscard]] Result<std::unique_ptr<SnapshotDef>> snapshot_parse_metadata_file(std::string_view text);

}  // namespace virtsnap::conf
