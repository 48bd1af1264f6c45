// checkpoint_list.cc - one domain's checkpoints: tree, metadata files, queries.

#include "conf/checkpoint_list.hh"

#include "util/file.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <cstdio>
#include <unordered_set>

#define LOG_MODULE "conf.checkpoint_list"

namespace virtsnap::conf {

namespace {

// libvirt's VIR_DOMAIN_CHECKPOINT_FILTERS_ALL (internal to libvirt).
constexpr unsigned kFiltersAll = VIR_DOMAIN_CHECKPOINT_LIST_LEAVES | VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES;
constexpr unsigned kListAllFlags = VIR_DOMAIN_CHECKPOINT_LIST_ROOTS | VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL | kFiltersAll;
constexpr unsigned kListChildrenFlags =
    VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS | VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL | kFiltersAll;

Status check_flags(unsigned flags, unsigned supported, const char *function) {
    unsigned unsupported = flags & ~supported;
    if (!unsupported) return ok();
    char buf[160];
    std::snprintf(buf, sizeof buf, "unsupported flags (0x%x) in function %s", unsupported, function);
    return fail(VIR_ERR_INVALID_ARG, VIR_FROM_QEMU, buf);
}

const std::string &name_of(const CheckpointDef &def) {
    static const std::string none;
    return def.name ? *def.name : none;
}

std::string parent_of(const CheckpointDef &def) { return def.parent_name.value_or(std::string()); }

}  // namespace

Status CheckpointList::require_loaded() const {
    if (!store_) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_CHECKPOINT, "checkpoint list is not loaded");
    return ok();
}

Result<MomentId> CheckpointList::lookup(std::string_view name) const {
    MomentId id = tree_.find(name);
    if (id == kNoMoment)
        return fail(VIR_ERR_NO_DOMAIN_CHECKPOINT, VIR_FROM_QEMU,
                    "no domain checkpoint with matching name '" + std::string(name) + "'");
    return id;
}

Status CheckpointList::write(const CheckpointDef &def) const {
    TRY(require_loaded());
    return store_->save(name_of(def), def.format_metadata_file());
}

std::vector<std::string> CheckpointList::names(const std::vector<MomentId> &ids) const {
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (MomentId id : ids) out.push_back(tree_.name(id));
    return out;
}

// ---- loading ----

Result<CheckpointLoadReport> CheckpointList::load(const StateLayout &layout, std::string_view domain_name,
                                                  const Uuid &domain_uuid) {
    MomentStore store = TRY(MomentStore::open(layout, MomentKind::Checkpoint, domain_name));
    std::vector<CheckpointDefPtr> loaded;
    std::unordered_set<std::string> seen;
    auto parse = [&](const std::string &, std::string_view text) -> Result<MomentFileInfo> {
        std::unique_ptr<CheckpointDef> def = TRY(CheckpointDef::parse_metadata_file(text));
        if (!def->name)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN_CHECKPOINT, "checkpoint file without a name");
        if (!seen.insert(*def->name).second)
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN, "domain moment " + *def->name + " already exists");
        MomentFileInfo info{*def->name, parent_of(*def), false};
        loaded.push_back(CheckpointDefPtr(std::move(def)));
        return info;
    };
    CheckpointLoadReport report;
    report.files = TRY(store.load_all(parse));
    std::stable_sort(loaded.begin(), loaded.end(), [](const CheckpointDefPtr &a, const CheckpointDefPtr &b) {
        if (a->creation_time != b->creation_time) return a->creation_time < b->creation_time;
        return name_of(*a) < name_of(*b);
    });

    Tree tree;
    for (const CheckpointDefPtr &def : loaded) {
        auto id = tree.add_unlinked(name_of(*def), parent_of(*def), Entry{def});
        if (!id) return fail(std::move(id).error());
    }
    if (!tree.rebuild_relations()) {
        report.files.inconsistent_relations = true;
        VS_ERROR("Checkpoints have inconsistent relations for domain %s", std::string(domain_name).c_str());
    }
    for (MomentId id : tree.orphaned()) {
        report.files.orphaned.push_back(tree.name(id));
        auto fixed = std::make_unique<CheckpointDef>(*tree.payload(id).def);
        fixed->parent_name.reset();
        tree.payload(id) = Entry{CheckpointDefPtr(std::move(fixed))};
    }
    tree.clear_current();
    report.loaded = tree.size();

    std::lock_guard lock(mu_);
    tree_ = std::move(tree);
    store_ = std::move(store);
    domain_uuid_ = domain_uuid;
    return report;
}

Status CheckpointList::rename_domain(const StateLayout &layout, std::string_view new_name) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    return store_->rename_domain(layout, new_name);
}

// ---- lookups ----

size_t CheckpointList::count() const {
    std::lock_guard lock(mu_);
    return tree_.size();
}

bool CheckpointList::contains(std::string_view name) const {
    std::lock_guard lock(mu_);
    return tree_.contains(name);
}

Result<CheckpointDefPtr> CheckpointList::find(std::string_view name) const {
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return tree_.payload(id).def;
}

Result<CheckpointDefPtr> CheckpointList::parent(std::string_view name) const {
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    MomentId p = tree_.parent(id);
    if (p == kNoMoment)
        return fail(VIR_ERR_NO_DOMAIN_CHECKPOINT, VIR_FROM_QEMU,
                    "checkpoint '" + std::string(name) + "' does not have a parent");
    return tree_.payload(p).def;
}

// ---- listings ----

Result<std::vector<std::string>> CheckpointList::list_all(unsigned flags) const {
    TRY(check_flags(flags, kListAllFlags, "qemuDomainListAllCheckpoints"));
    std::lock_guard lock(mu_);
    return names(tree_.list(kNoMoment, flags, checkpoint_list_flags()));
}

Result<int> CheckpointList::num(unsigned flags) const {
    TRY(check_flags(flags, kListAllFlags, "qemuDomainListAllCheckpoints"));
    std::lock_guard lock(mu_);
    return int(tree_.count(kNoMoment, flags, checkpoint_list_flags()));
}

Result<std::vector<std::string>> CheckpointList::list_all_children(std::string_view name, unsigned flags) const {
    TRY(check_flags(flags, kListChildrenFlags, "qemuDomainCheckpointListAllChildren"));
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return names(tree_.list(id, flags, checkpoint_list_flags()));
}

Result<int> CheckpointList::num_children(std::string_view name, unsigned flags) const {
    TRY(check_flags(flags, kListChildrenFlags, "qemuDomainCheckpointListAllChildren"));
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return int(tree_.count(id, flags, checkpoint_list_flags()));
}

Result<std::string> CheckpointList::get_xml(std::string_view name, unsigned flags,
                                            const SizeFiller &update_size) const {
    TRY(check_flags(flags,
                    VIR_DOMAIN_CHECKPOINT_XML_SECURE | VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN |
                        VIR_DOMAIN_CHECKPOINT_XML_SIZE,
                    "qemuCheckpointGetXMLDesc"));
    CheckpointDefPtr def;
    {
        std::lock_guard lock(mu_);
        MomentId id = TRY(lookup(name));
        def = tree_.payload(id).def;
    }
    unsigned format_flags = checkpoint_format_flags_from_xml_flags(flags);
    if ((flags & VIR_DOMAIN_CHECKPOINT_XML_SIZE) && update_size) {
        CheckpointDef sized(*def);
        TRY(update_size(sized));
        return sized.format(format_flags);
    }
    return def->format(format_flags);
}

// ---- changes ----

Result<CheckpointDefPtr> CheckpointList::redefine(std::unique_ptr<CheckpointDef> def) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    if (!def->name) return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_CHECKPOINT, "checkpoint name must be set");
    const std::string name = *def->name;
    const std::string parent_name = parent_of(*def);

    // virDomainCheckpointRedefinePrep: cycles, the domain's uuid, alignment.
    TRY(tree_.check_parent(name, parent_name));
    if (!def->dom || !(def->dom->uuid == domain_uuid_))
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_CHECKPOINT,
                    "definition for checkpoint " + name + " must use uuid " + domain_uuid_.str());
    TRY(def->align_disks());
    // libvirt's RedefineCommit also compares the ABI of the replaced
    // checkpoint's <domain>; virtsnap has no ABI comparison yet.

    TRY(write(*def));
    CheckpointDefPtr stored(std::move(def));
    MomentId id = tree_.find(name);
    if (id != kNoMoment) {
        tree_.payload(id) = Entry{stored};
        Status moved = tree_.reparent(id, parent_name.empty() ? kNoMoment : tree_.find(parent_name));
        if (!moved) VS_ERROR("reparenting checkpoint '%s' failed: %s", name.c_str(), moved.error().message().c_str());
    } else {
        auto added = tree_.add(name, parent_name, Entry{stored});
        if (!added) {
            Status st = store_->remove(name);
            (void)st;
            return fail(std::move(added).error());
        }
    }
    return stored;
}

Result<CheckpointDefPtr> CheckpointList::add_created(std::unique_ptr<CheckpointDef> def) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    if (!def->name) return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_CHECKPOINT, "checkpoint name must be set");
    const std::string name = *def->name;
    if (tree_.contains(name))
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN, "domain moment " + name + " already exists");
    if (def->parent_name && !tree_.contains(*def->parent_name)) {
        VS_WARN("parent checkpoint '%s' of new checkpoint '%s' is gone; adding it as a root",
                def->parent_name->c_str(), name.c_str());
        def->parent_name.reset();
    }
    TRY(write(*def));
    CheckpointDefPtr stored(std::move(def));
    auto added = tree_.add(name, parent_of(*stored), Entry{stored});
    if (!added) {
        Status st = store_->remove(name);
        (void)st;
        return fail(std::move(added).error());
    }
    return stored;
}

Result<CheckpointDefPtr> CheckpointList::replace_def(std::unique_ptr<CheckpointDef> def) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    if (!def->name) return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_CHECKPOINT, "checkpoint name must be set");
    MomentId id = TRY(lookup(*def->name));
    MomentId p = tree_.parent(id);
    if (p == kNoMoment) def->parent_name.reset();
    else def->parent_name = tree_.name(p);
    TRY(write(*def));
    CheckpointDefPtr stored(std::move(def));
    tree_.payload(id) = Entry{stored};
    return stored;
}

Result<CheckpointRemoval> CheckpointList::remove_metadata(std::string_view name, MomentRemoveMode mode) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    const MomentId id = TRY(lookup(name));
    CheckpointRemoval out;

    if (mode == MomentRemoveMode::Single) {
        const MomentId parent = tree_.parent(id);
        std::vector<MomentId> children = tree_.children(id);
        std::vector<CheckpointDefPtr> moved;
        moved.reserve(children.size());
        for (MomentId c : children) {
            auto d = std::make_unique<CheckpointDef>(*tree_.payload(c).def);
            if (parent == kNoMoment) d->parent_name.reset();
            else d->parent_name = tree_.name(parent);
            Status st = write(*d);
            if (!st) {
                for (size_t i = 0; i < moved.size(); i++) {
                    Status back = write(*tree_.payload(children[i]).def);
                    if (!back) VS_WARN("cannot restore checkpoint file of '%s'", tree_.name(children[i]).c_str());
                }
                return fail(std::move(st).error());
            }
            moved.push_back(CheckpointDefPtr(std::move(d)));
        }
        Status gone = store_->remove(name);
        if (!gone) VS_WARN("Failed to unlink checkpoint file of '%s'", std::string(name).c_str());
        for (size_t i = 0; i < children.size(); i++) {
            tree_.payload(children[i]) = Entry{moved[i]};
            out.reparented.push_back(tree_.name(children[i]));
        }
        std::string removed_name(name);
        auto removed = tree_.remove(id);
        out.removed.emplace_back(std::move(removed_name), std::move(removed.payload.def));
        return out;
    }

    // Children before parents: a crash leaves no file whose parent is gone.
    const std::vector<MomentId> desc = tree_.descendants(id);
    for (auto it = desc.rbegin(); it != desc.rend(); ++it) {
        Status gone = store_->remove(tree_.name(*it));
        if (!gone) VS_WARN("Failed to unlink checkpoint file of '%s'", tree_.name(*it).c_str());
    }
    if (mode == MomentRemoveMode::WithChildren) {
        Status gone = store_->remove(name);
        if (!gone) VS_WARN("Failed to unlink checkpoint file of '%s'", std::string(name).c_str());
        auto removed = tree_.remove_with_descendants(id);
        for (size_t i = 1; i < removed.size(); i++)
            out.removed.emplace_back(std::move(removed[i].first), std::move(removed[i].second.def));
        out.removed.emplace_back(std::move(removed[0].first), std::move(removed[0].second.def));
    } else {
        for (MomentId c : tree_.children(id)) {
            auto removed = tree_.remove_with_descendants(c);
            for (auto &r : removed) out.removed.emplace_back(std::move(r.first), std::move(r.second.def));
        }
    }
    return out;
}

Status CheckpointList::remove_all() {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    Status st = store_->remove_all();
    if (st) {
        tree_.clear();
        return st;
    }
    std::vector<MomentId> gone;
    for (MomentId id : tree_.in_creation_order()) {
        auto path = store_->path_for(tree_.name(id));
        if (path && !file::exists(*path)) gone.push_back(id);
    }
    for (MomentId id : gone) {
        auto removed = tree_.remove(id);
        (void)removed;
    }
    return st;
}

}  // namespace virtsnap::conf
