// checkpoint_list.hh - the checkpoints of one domain: the in-memory tree, the
// metadata files behind it and libvirt's query semantics.
//
// The checkpoint counterpart of SnapshotList (virDomainCheckpointObjList plus
// the qemu driver's checkpoint metadata handling), with the same rules: one
// mutex, immutable shared definitions, files written before memory changes.
// libvirt 9.0 has no "current checkpoint", so neither has this list.
// Listings without TOPOLOGICAL follow creation order; a load orders
// checkpoints by creationTime, then name.
#pragma once

#include "conf/checkpoint_def.hh"
#include "conf/moment_store.hh"
#include "conf/moment_tree.hh"
#include "conf/snapshot_list.hh"
#include "conf/state_layout.hh"
#include "util/result.hh"
#include "util/uuid.hh"

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virtsnap::conf {

using CheckpointDefPtr = std::shared_ptr<const CheckpointDef>;

struct CheckpointRemoval {
    // Removed checkpoints: descendants in pre-order, then the named one
    // (unless ChildrenOnly), as qemuCheckpointDelete discards them.
    std::vector<std::pair<std::string, CheckpointDefPtr>> removed;
    // Single mode: the children that moved to the removed checkpoint's parent.
    std::vector<std::string> reparented;
};

struct CheckpointLoadReport {
    MomentLoadReport files;
    size_t loaded = 0;
};

struct CheckpointListEntry {
    CheckpointDefPtr def;
};

class CheckpointList {
public:
    CheckpointList() = default;
    CheckpointList(const CheckpointList &) = delete;
    CheckpointList &operator=(const CheckpointList &) = delete;

    // Reads <checkpointDir>/<domain>/ (qemuDomainCheckpointLoad): bad files
    // and duplicate names are skipped and reported, a missing parent makes a
    // root. Replaces whatever the list held.
    [[nodiscard]] Result<CheckpointLoadReport> load(const StateLayout &layout, std::string_view domain_name,
                                                    const Uuid &domain_uuid);
    [[nodiscard]] Status rename_domain(const StateLayout &layout, std::string_view new_name);

    // ---- lookups ----
    size_t count() const;
    bool contains(std::string_view name) const;
    // NO_DOMAIN_CHECKPOINT "no domain checkpoint with matching name '%s'".
    [[nodiscard]] Result<CheckpointDefPtr> find(std::string_view name) const;
    // NO_DOMAIN_CHECKPOINT "checkpoint '%s' does not have a parent".
    [[nodiscard]] Result<CheckpointDefPtr> parent(std::string_view name) const;

    // ---- listings (qemuDomainListAllCheckpoints / CheckpointListAllChildren flags) ----
    [[nodiscard]] Result<std::vector<std::string>> list_all(unsigned flags) const;
    [[nodiscard]] Result<int> num(unsigned flags) const;  // ListAll with need_results = 0
    [[nodiscard]] Result<std::vector<std::string>> list_all_children(std::string_view name, unsigned flags) const;
    [[nodiscard]] Result<int> num_children(std::string_view name, unsigned flags) const;

    // qemuCheckpointGetXMLDesc: SECURE, NO_DOMAIN and SIZE. With SIZE,
    // `update_size` fills the per-disk sizes of a private copy (the QEMU
    // layer's job, including its "domain is not running" check).
    using SizeFiller = std::function<Status(CheckpointDef &)>;
    [[nodiscard]] Result<std::string> get_xml(std::string_view name, unsigned flags,
                                              const SizeFiller &update_size = {}) const;

    // ---- changes ----
    // VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE (virDomainCheckpointRedefinePrep
    // and RedefineCommit): cycle checks, a <domain> with the domain's uuid,
    // disk alignment; a replaced checkpoint keeps its children.
    [[nodiscard]] Result<CheckpointDefPtr> redefine(std::unique_ptr<CheckpointDef> def);
    // The commit point of a new checkpoint (parent_name as the creation chose it).
    [[nodiscard]] Result<CheckpointDefPtr> add_created(std::unique_ptr<CheckpointDef> def);
    // Replaces a stored definition in place and persists it; the parent stays.
    [[nodiscard]] Result<CheckpointDefPtr> replace_def(std::unique_ptr<CheckpointDef> def);
    // Metadata handling of a delete (qemuCheckpointDiscard): children of a
    // single removal move to its parent (files rewritten first).
    [[nodiscard]] Result<CheckpointRemoval> remove_metadata(std::string_view name, MomentRemoveMode mode);
    // Undefine --checkpoints-metadata.
    [[nodiscard]] Status remove_all();

private:
    using Entry = CheckpointListEntry;
    using Tree = MomentTree<Entry>;

    [[nodiscard]] Status require_loaded() const;
    [[nodiscard]] Result<MomentId> lookup(std::string_view name) const;
    [[nodiscard]] Status write(const CheckpointDef &def) const;
    std::vector<std::string> names(const std::vector<MomentId> &ids) const;

    mutable std::mutex mu_;
    Tree tree_;
    std::optional<MomentStore> store_;
    Uuid domain_uuid_;
};

}  // namespace virtsnap::conf
