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
//
// Scale. A load reads only the files the start-up index (snapshot_index.hh)
// does not know in their current version; the definitions of the others are
// parsed from their files the first time a caller needs them (find, a
// change that rewrites them); get_xml keeps the formatted XML instead.
// Lookups by name, listings and counts never need a definition. The index
// is rewritten after a load that parsed anything and by save_index() (the
// daemon calls it at shut-down).
//
// Durability. Metadata writes are atomic at once and durable within
// DeferredSync's delay (util/deferred_sync.hh): a killed daemon never loses
// one, a power cut may lose the last moment's. Jobs whose journal could redo a
// write flush before they end.
#pragma once

#include "conf/moment_store.hh"
#include "conf/moment_tree.hh"
#include "conf/snapshot_def.hh"
#include "conf/snapshot_index.hh"
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
    size_t from_index = 0;                  // of `loaded`, known from the index (not read)
    std::optional<std::string> current;     // after all start-up rules
};

// One tree node's payload: what the list filters read, the definition once
// parsed, and the version of the metadata file it describes.
struct SnapshotListEntry {
    mutable SnapshotDefPtr def;             // null until needed (entry from the index)
    // The public XML as get_xml formatted it, without and with SECURE. An
    // entry is replaced whenever its definition changes, so these never go
    // stale; they stand for the definition when only the XML was asked for
    // (~1.5 KiB against ~24 KiB parsed).
    mutable std::shared_ptr<const std::string> xml[2];
    uint64_t generation = 0;  // unique per entry made: tells a replaced entry apart
    SnapshotStateClass state_class = SnapshotStateClass::Active;
    bool external = false;
    std::optional<int64_t> creation_time;
    file::FileStamp stamp;                  // ino 0: not indexable
    // What that file says (the tree may differ: a lost parent makes a root).
    std::string file_parent;
    bool file_claims_current = false;
};

class SnapshotList {
public:
    SnapshotList() = default;
    // Writes the start-up index when the list changed since it was last
    // written (the daemon drops its lists at shut-down).
    ~SnapshotList();
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
    // The same checks by name only: no definition is parsed.
    [[nodiscard]] Status check_exists(std::string_view name) const;
    [[nodiscard]] Result<std::string> parent_name(std::string_view name) const;

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

    // Writes the start-up index for what the list holds now.
    [[nodiscard]] Status save_index() const;
    // How many definitions are parsed (memory and laziness checks in tests).
    size_t parsed_count() const;

private:
    using Entry = SnapshotListEntry;
    using Tree = MomentTree<Entry>;

    static Entry make_entry(SnapshotDefPtr def);
    static Entry make_entry(const SnapshotSummary &summary);
    [[nodiscard]] Status require_loaded() const;
    [[nodiscard]] Result<MomentId> lookup(std::string_view name) const;
    // The definition of `id`, parsed from its file on first use.
    [[nodiscard]] Result<SnapshotDefPtr> def_of(MomentId id) const;
    // The same without keeping it: the kept definition, else a parse.
    [[nodiscard]] Result<SnapshotDefPtr> peek_def(MomentId id) const;
    // Writes the file of `def` and returns the entry it now has (`current`
    // is what the file claims; memory is the caller's business).
    [[nodiscard]] Result<Entry> write(SnapshotDefPtr def, bool current) const;
    // Rewrites the file of an existing snapshot with a new current claim.
    [[nodiscard]] Status rewrite_claim(MomentId id, bool current);
    [[nodiscard]] Status save_index_locked() const;
    // Writes `id` as current, then clears the old current's claim; memory
    // follows the first write.
    [[nodiscard]] Status switch_current(MomentId id);
    std::vector<std::string> names(const std::vector<MomentId> &ids, size_t limit) const;
    MomentPredicate predicate() const;

    mutable std::mutex mu_;
    Tree tree_;
    std::optional<MomentStore> store_;
    std::string index_path_;
    mutable bool index_dirty_ = false;
    Uuid domain_uuid_;
};

}  // namespace virtsnap::conf
