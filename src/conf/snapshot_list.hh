// snapshot_list.hh - the snapshots of one domain: the in-memory tree, the
// metadata files behind it and libvirt's query semantics.
//
// libvirt splits this between virDomainSnapshotObjList (the tree and its
// filters) and the qemu driver (metadata files, redefine, current, metadata
// deletion). Here it is one object per domain, guarded by one mutex, so the
// daemon can answer lookups and listings without a domain job:
//   * lookups are one hash probe, counts without filters are O(1), listings
//     are linear in what they return (plus the walk they need);
//   * definitions are immutable once stored (shared_ptr<const SnapshotDef>),
//     so a caller keeps a consistent copy while the list changes;
//   * every change writes its files first and touches memory only when the
//     write that commits it succeeded.
//
// Crash safety of "current". The current snapshot is only recorded as
// <active>1</active> in its file (as libvirt). Switching it writes the new
// current's file first, then clears the old one's, so a crash in between
// leaves two files claiming current. libvirt's loader takes the last one in
// directory order, which is arbitrary; virtsnap takes the claim with the newest
// creationTime (ties: the last read) and logs it. Either claimant is a state
// an atomic switch could have left (before or after it); taking the newest
// matches what a crash during creating or deleting a snapshot leaves, where
// the newer snapshot is the one that was (or is still) current.
//
// Order. Listings without TOPOLOGICAL follow creation order (libvirt follows
// its hash table). Files carry no sequence number, so a load orders
// snapshots by creationTime, then name.
#pragma once

#include "conf/moment_store.hh"
#include "conf/moment_tree.hh"
#include "conf/snapshot_def.hh"
#include "conf/state_layout.hh"
#include "util/result.hh"
#include "util/uuid.hh"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virtsnap::conf {

using SnapshotDefPtr = std::shared_ptr<const SnapshotDef>;

// What a metadata-only delete covers (VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN /
// _CHILDREN_ONLY, or neither). Checkpoints use the same modes.
enum class MomentRemoveMode { Single, WithChildren, ChildrenOnly };

// The mode for public delete flags (CHILDREN 1, CHILDREN_ONLY 4; other bits
// ignored). The caller has rejected CHILDREN together with CHILDREN_ONLY.
MomentRemoveMode moment_remove_mode_from_flags(unsigned delete_flags);

struct SnapshotRemoval {
    // Removed snapshots in libvirt's discard order: descendants in pre-order,
    // then the named snapshot (unless ChildrenOnly).
    std::vector<std::pair<std::string, SnapshotDefPtr>> removed;
    // Single mode: the children that moved to the removed snapshot's parent.
    std::vector<std::string> reparented;
    // Current after the removal, and whether the removal changed it.
    std::optional<std::string> current;
    bool current_changed = false;
};

struct SnapshotLoadReport {
    MomentLoadReport files;                 // what the store read and skipped
    size_t loaded = 0;
    std::optional<std::string> current;     // after all start-up rules
};

// One tree node's payload: the definition and what the list filters read.
struct SnapshotListEntry {
    SnapshotDefPtr def;
    SnapshotStateClass state_class = SnapshotStateClass::Active;
    bool external = false;
};

class SnapshotList {
public:
    SnapshotList() = default;
    SnapshotList(const SnapshotList &) = delete;
    SnapshotList &operator=(const SnapshotList &) = delete;

    // Reads <snapshotDir>/<domain>/ with libvirt's start-up rules (spec §4.6):
    // unreadable or unparsable files and duplicate names are skipped and
    // reported, a missing parent makes a root and, like a cycle, clears
    // current. Replaces whatever the list held. Fails only when the directory
    // cannot be listed or the domain name is not a valid path component.
    [[nodiscard]] Result<SnapshotLoadReport> load(const StateLayout &layout, std::string_view domain_name,
                                                  const Uuid &domain_uuid);
    // Follows a domain rename (moves the metadata directory).
    [[nodiscard]] Status rename_domain(const StateLayout &layout, std::string_view new_name);

    // ---- lookups (errors as the qemu driver reports them) ----
    size_t count() const;
    bool contains(std::string_view name) const;
    // NO_DOMAIN_SNAPSHOT "no domain snapshot with matching name '%s'".
    [[nodiscard]] Result<SnapshotDefPtr> find(std::string_view name) const;
    // NO_DOMAIN_SNAPSHOT "the domain does not have a current snapshot".
    [[nodiscard]] Result<SnapshotDefPtr> current() const;
    bool has_current() const;
    std::optional<std::string> current_name() const;
    [[nodiscard]] Result<bool> is_current(std::string_view name) const;
    // NO_DOMAIN_SNAPSHOT "snapshot '%s' does not have a parent" for a root.
    [[nodiscard]] Result<SnapshotDefPtr> parent(std::string_view name) const;

    // ---- listings: each checks its API's flags first (virCheckFlags) ----
    [[nodiscard]] Result<int> num(unsigned flags) const;                          // qemuDomainSnapshotNum
    [[nodiscard]] Result<std::vector<std::string>> list_names(unsigned flags, int maxnames) const;
    [[nodiscard]] Result<std::vector<std::string>> list_all(unsigned flags) const;  // ListAllSnapshots
    [[nodiscard]] Result<int> num_children(std::string_view name, unsigned flags) const;
    [[nodiscard]] Result<std::vector<std::string>> list_children_names(std::string_view name, unsigned flags,
                                                                       int maxnames) const;
    [[nodiscard]] Result<std::vector<std::string>> list_all_children(std::string_view name, unsigned flags) const;

    // The public XML (qemuDomainSnapshotGetXMLDesc): flags may only hold
    // VIR_DOMAIN_SNAPSHOT_XML_SECURE. The read-only check stays with the caller.
    [[nodiscard]] Result<std::string> get_xml(std::string_view name, unsigned flags) const;

    // ---- changes ----
    // VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE (spec §4.5): cycle and parent checks,
    // DISK_ONLY needs disk-snapshot state, the uuid of <domain>, no change
    // between online/offline or disk-only/full system when replacing, the
    // replaced snapshot's <domain> kept when the new one has none, disks
    // aligned. A replaced snapshot keeps its children; CURRENT makes it
    // current. The caller has run the create-flag and name checks.
    [[nodiscard]] Result<SnapshotDefPtr> redefine(std::unique_ptr<SnapshotDef> def, unsigned create_flags);
    // The commit point of a new snapshot: def.parent_name is the current
    // snapshot at the start of the creation ("" for none). A parent deleted
    // meanwhile makes it a root.
    [[nodiscard]] Result<SnapshotDefPtr> add_created(std::unique_ptr<SnapshotDef> def, bool make_current);
    // Makes `name` current (revert, REDEFINE|CURRENT of an unchanged def).
    [[nodiscard]] Status set_current(std::string_view name);
    // Replaces a stored definition in place and persists it (descendant
    // updates of an external delete, <snapshotDeleteInProgress/> markers).
    // The name must exist; the parent stays the one in the tree.
    [[nodiscard]] Result<SnapshotDefPtr> replace_def(std::unique_ptr<SnapshotDef> def);
    // Metadata handling of a delete (qemuSnapshotDiscardMetadata, spec §4.2).
    [[nodiscard]] Result<SnapshotRemoval> remove_metadata(std::string_view name, MomentRemoveMode mode);
    // Drops every snapshot and the directory (undefine --snapshots-metadata).
    [[nodiscard]] Status remove_all();

private:
    using Entry = SnapshotListEntry;
    using Tree = MomentTree<Entry>;

    static Entry make_entry(SnapshotDefPtr def);
    [[nodiscard]] Status require_loaded() const;
    [[nodiscard]] Result<MomentId> lookup(std::string_view name) const;
    [[nodiscard]] Status write(const SnapshotDef &def, bool current) const;
    // Writes `id` as current, then clears the old current's claim; memory
    // follows the first write.
    [[nodiscard]] Status switch_current(MomentId id);
    std::vector<std::string> names(const std::vector<MomentId> &ids, size_t limit) const;
    MomentPredicate predicate() const;

    mutable std::mutex mu_;
    Tree tree_;
    std::optional<MomentStore> store_;
    Uuid domain_uuid_;
};

}  // namespace virtsnap::conf
