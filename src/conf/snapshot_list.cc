// snapshot_list.cc - one domain's snapshots: tree, metadata files, queries.

#include "conf/snapshot_list.hh"

#include "conf/snapshot_align.hh"
#include "util/file.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <unordered_set>

#define LOG_MODULE "conf.snapshot_list"

namespace virtsnap::conf {

namespace {

// libvirt's VIR_DOMAIN_SNAPSHOT_FILTERS_ALL (internal to libvirt).
constexpr unsigned kFiltersAll =
    VIR_DOMAIN_SNAPSHOT_LIST_LEAVES | VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES | VIR_DOMAIN_SNAPSHOT_LIST_METADATA |
    VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA | VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE |
    VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL | VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL;

// virCheckFlags as the qemu driver expands it.
Status check_flags(unsigned flags, unsigned supported, const char *function) {
    unsigned unsupported = flags & ~supported;
    if (!unsupported) return ok();
    char buf[160];
    std::snprintf(buf, sizeof buf, "unsupported flags (0x%x) in function %s", unsupported, function);
    return fail(VIR_ERR_INVALID_ARG, VIR_FROM_QEMU, buf);
}

Error no_snapshot(std::string_view name) {
    return make_error(VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                      "no domain snapshot with matching name '" + std::string(name) + "'");
}

bool is_online(SnapshotState s) { return s == SnapshotState::Running || s == SnapshotState::Paused; }

}  // namespace

MomentRemoveMode moment_remove_mode_from_flags(unsigned delete_flags) {
    // CHILDREN and CHILDREN_ONLY have the same values for snapshots and checkpoints.
    if (delete_flags & VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN) return MomentRemoveMode::WithChildren;
    if (delete_flags & VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY) return MomentRemoveMode::ChildrenOnly;
    return MomentRemoveMode::Single;
}

namespace {
uint64_t next_generation() {
    static std::atomic<uint64_t> counter{0};
    return ++counter;
}
}  // namespace

SnapshotList::Entry SnapshotList::make_entry(SnapshotDefPtr def) {
    Entry e;
    e.generation = next_generation();
    if (def->state == SnapshotState::Shutoff) e.state_class = SnapshotStateClass::Inactive;
    else if (def->state == SnapshotState::DiskSnapshot) e.state_class = SnapshotStateClass::DiskOnly;
    else e.state_class = SnapshotStateClass::Active;
    e.external = def->is_external();
    e.creation_time = def->creation_time;
    e.def = std::move(def);
    return e;
}

SnapshotList::Entry SnapshotList::make_entry(const SnapshotSummary &summary) {
    Entry e;
    e.generation = next_generation();
    e.state_class = summary.state_class;
    e.external = summary.external;
    e.creation_time = summary.creation_time;
    e.file_parent = summary.parent;
    e.file_claims_current = summary.claims_current;
    return e;
}

Status SnapshotList::require_loaded() const {
    if (!store_) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_SNAPSHOT, "snapshot list is not loaded");
    return ok();
}

Result<MomentId> SnapshotList::lookup(std::string_view name) const {
    MomentId id = tree_.find(name);
    if (id == kNoMoment) return fail(no_snapshot(name));
    return id;
}

Result<SnapshotDefPtr> SnapshotList::def_of(MomentId id) const {
    const Entry &e = tree_.payload(id);
    if (!e.def) e.def = TRY(peek_def(id));
    return e.def;
}

Result<SnapshotDefPtr> SnapshotList::peek_def(MomentId id) const {
    const Entry &e = tree_.payload(id);
    if (e.def) return e.def;
    TRY(require_loaded());
    const std::string &name = tree_.name(id);
    std::string path = TRY(store_->path_for(name));
    auto parsed = [&]() -> Result<std::unique_ptr<SnapshotDef>> {
        std::string text = TRY(file::read(path, MomentStore::kMaxFileBytes, VIR_FROM_DOMAIN_SNAPSHOT));
        std::unique_ptr<SnapshotDef> def = TRY(snapshot_parse_metadata_file(text));
        if (def->name != name)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_SNAPSHOT, "file names snapshot '" + def->name + "'");
        return def;
    }();
    if (!parsed) {
        // The index only knows versions that once parsed: the file changed
        // behind our back (or the disk failed).
        VS_ERROR("Failed to load snapshot '%s' from '%s': %s", name.c_str(), path.c_str(),
                 parsed.error().message().c_str());
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_SNAPSHOT,
                    "cannot load metadata of snapshot '" + name + "': " + parsed.error().message());
    }
    std::unique_ptr<SnapshotDef> def = std::move(*parsed);
    // Relations and current live in the tree (a lost parent made it a root).
    MomentId p = tree_.parent(id);
    def->parent_name = p == kNoMoment ? std::string() : tree_.name(p);
    def->current = false;
    return SnapshotDefPtr(std::move(def));
}

Result<SnapshotList::Entry> SnapshotList::write(SnapshotDefPtr def, bool current) const {
    TRY(require_loaded());
    file::FileStamp stamp;
    index_dirty_ = true;
    TRY(store_->save(def->name, snapshot_metadata_file_text(*def, domain_uuid_, current), file::Durability::Deferred,
                     &stamp));
    Entry e = make_entry(std::move(def));
    e.stamp = stamp;
    e.file_parent = e.def->parent_name;
    e.file_claims_current = current;
    return e;
}

Status SnapshotList::rewrite_claim(MomentId id, bool current) {
    SnapshotDefPtr def = TRY(def_of(id));
    Entry e = TRY(write(std::move(def), current));
    tree_.payload(id) = std::move(e);
    return ok();
}

MomentPredicate SnapshotList::predicate() const {
    return [this](MomentId id, unsigned flags) {
        const Entry &e = tree_.payload(id);
        return snapshot_filter_accepts(flags, e.state_class, e.external);
    };
}

std::vector<std::string> SnapshotList::names(const std::vector<MomentId> &ids, size_t limit) const {
    std::vector<std::string> out;
    size_t n = std::min(limit, ids.size());
    out.reserve(n);
    for (size_t i = 0; i < n; i++) out.push_back(tree_.name(ids[i]));
    return out;
}

// ---- loading ----

Result<SnapshotLoadReport> SnapshotList::load(const StateLayout &layout, std::string_view domain_name,
                                              const Uuid &domain_uuid) {
    MomentStore store = TRY(MomentStore::open(layout, MomentKind::Snapshot, domain_name));
    std::string index_path = TRY(layout.snapshot_index_file(domain_name));
    std::optional<SnapshotIndex> index;
    if (file::exists(index_path)) {
        // A cache: whatever is wrong with it only means parsing the files.
        auto text = file::read(index_path, size_t(256) << 20, VIR_FROM_DOMAIN_SNAPSHOT);
        if (text) index = SnapshotIndex::parse(*text);
        if (!index) VS_WARN("ignoring snapshot index '%s'", index_path.c_str());
    }

    struct Loaded {
        Entry entry;
        std::string name, parent;
        size_t read_index = 0;
        bool claims_current = false;
    };
    std::vector<Loaded> loaded;
    std::unordered_set<std::string> seen;
    size_t from_index = 0;
    // As libvirt: the first file read with a name wins, later ones fail to be added.
    auto claim_name = [&](const std::string &name) -> Status {
        if (!seen.insert(name).second)
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN, "domain moment " + name + " already exists");
        return ok();
    };
    MomentStore::CachedLoader loader;
    loader.known = [&](const std::string &entry,
                       const file::FileStamp &stamp) -> std::optional<Result<MomentFileInfo>> {
        const SnapshotSummary *sum = index ? index->find(entry, stamp) : nullptr;
        if (!sum) return std::nullopt;
        if (auto st = claim_name(sum->name); !st) return Result<MomentFileInfo>(fail(std::move(st).error()));
        Entry e = make_entry(*sum);
        e.stamp = stamp;
        loaded.push_back({std::move(e), sum->name, sum->parent, loaded.size(), sum->claims_current});
        from_index++;
        return Result<MomentFileInfo>(MomentFileInfo{sum->name, sum->parent, sum->claims_current});
    };
    loader.parse = [&](const std::string &path, std::string_view text,
                       const file::FileStamp &stamp) -> Result<MomentFileInfo> {
        std::unique_ptr<SnapshotDef> def = TRY(snapshot_parse_metadata_file(text));
        TRY(claim_name(def->name));
        MomentFileInfo info{def->name, def->parent_name, def->current};
        def->current = false;  // current lives in the tree, not in the definition
        Entry e = make_entry(SnapshotDefPtr(std::move(def)));
        e.file_parent = info.parent;
        e.file_claims_current = info.claims_current;
        // Only "<name>.xml" is the file later writes replace, so only it can be indexed.
        if (file::basename(path) == info.name + ".xml") e.stamp = stamp;
        loaded.push_back({std::move(e), info.name, info.parent, loaded.size(), info.claims_current});
        return info;
    };
    SnapshotLoadReport report;
    report.files = TRY(store.load_all(loader));
    report.from_index = from_index;

    // Creation order, as far as the files tell it.
    std::stable_sort(loaded.begin(), loaded.end(), [](const Loaded &a, const Loaded &b) {
        int64_t ta = a.entry.creation_time.value_or(0), tb = b.entry.creation_time.value_or(0);
        if (ta != tb) return ta < tb;
        return a.name < b.name;
    });

    Tree tree;
    const Loaded *claim = nullptr;
    for (Loaded &l : loaded) {
        auto id = tree.add_unlinked(l.name, l.parent, std::move(l.entry));
        if (!id) return fail(std::move(id).error());  // names are unique here; only "too many"
        if (!l.claims_current) continue;
        // Deliberate deviation (see the header): the newest claim wins, not the last read.
        if (!claim) {
            claim = &l;
            continue;
        }
        int64_t tl = tree.payload(*id).creation_time.value_or(0);
        int64_t tc = tree.payload(tree.find(claim->name)).creation_time.value_or(0);
        if (tl > tc || (tl == tc && l.read_index > claim->read_index)) claim = &l;
    }
    if (report.files.current_claims > 1 && claim)
        VS_WARN("Choosing snapshot '%s', the newest of %zu claiming to be current for domain %s",
                claim->name.c_str(), report.files.current_claims, std::string(domain_name).c_str());

    bool consistent = tree.rebuild_relations();
    if (!consistent) {
        report.files.inconsistent_relations = true;
        VS_ERROR("Snapshots have inconsistent relations for domain %s", std::string(domain_name).c_str());
    }
    // Moments made roots no longer name their lost parent, so the XML agrees
    // with GetParent (the file keeps it until the snapshot is next written;
    // a definition parsed later takes its parent from the tree anyway).
    for (MomentId id : tree.orphaned()) {
        report.files.orphaned.push_back(tree.name(id));
        Entry &e = tree.payload(id);
        if (!e.def) continue;
        auto fixed = std::make_unique<SnapshotDef>(*e.def);
        fixed->parent_name.clear();
        e.def = SnapshotDefPtr(std::move(fixed));
    }
    if (consistent && claim) tree.set_current(tree.find(claim->name));
    else tree.clear_current();

    report.loaded = tree.size();
    if (tree.current() != kNoMoment) report.current = tree.name(tree.current());

    std::lock_guard lock(mu_);
    tree_ = std::move(tree);
    store_ = std::move(store);
    index_path_ = std::move(index_path);
    domain_uuid_ = domain_uuid;
    if (from_index != report.loaded || !index || index->size() != from_index) {
        Status st = save_index_locked();
        if (!st) VS_WARN("cannot write snapshot index: %s", st.error().message().c_str());
    }
    return report;
}

SnapshotList::~SnapshotList() {
    std::lock_guard lock(mu_);
    if (!store_ || !index_dirty_) return;
    Status st = save_index_locked();
    if (!st) VS_WARN("cannot write snapshot index: %s", st.error().message().c_str());
}

Status SnapshotList::save_index() const {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    return save_index_locked();
}

Status SnapshotList::save_index_locked() const {
    index_dirty_ = false;
    SnapshotIndex index;
    for (MomentId id : tree_.in_creation_order()) {
        const Entry &e = tree_.payload(id);
        if (e.stamp.ino == 0) continue;
        SnapshotIndexRecord r;
        r.file = tree_.name(id) + ".xml";
        r.stamp = e.stamp;
        r.summary.name = tree_.name(id);
        r.summary.parent = e.file_parent;
        r.summary.claims_current = e.file_claims_current;
        r.summary.creation_time = e.creation_time;
        r.summary.state_class = e.state_class;
        r.summary.external = e.external;
        index.add(std::move(r));
    }
    if (index.size() == 0) {
        if (file::exists(index_path_)) TRY(file::remove(index_path_, VIR_FROM_DOMAIN_SNAPSHOT));
        return ok();
    }
    TRY(file::make_dirs(file::dirname(index_path_), 0755, VIR_FROM_DOMAIN_SNAPSHOT));
    return file::write_atomic(index_path_, index.format(), 0600, VIR_FROM_DOMAIN_SNAPSHOT,
                              file::Durability::Deferred);
}

size_t SnapshotList::parsed_count() const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (MomentId id : tree_.in_creation_order())
        if (tree_.payload(id).def) n++;
    return n;
}

Status SnapshotList::rename_domain(const StateLayout &layout, std::string_view new_name) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    std::string new_index = TRY(layout.snapshot_index_file(new_name));
    TRY(store_->rename_domain(layout, new_name));
    // Moving a directory keeps every stamp; the index follows under the new name.
    Status dropped = file::remove(index_path_, VIR_FROM_DOMAIN_SNAPSHOT);
    if (!dropped) VS_WARN("%s", dropped.error().message().c_str());
    index_path_ = std::move(new_index);
    return save_index_locked();
}

// ---- lookups ----

size_t SnapshotList::count() const {
    std::lock_guard lock(mu_);
    return tree_.size();
}

bool SnapshotList::contains(std::string_view name) const {
    std::lock_guard lock(mu_);
    return tree_.contains(name);
}

Result<SnapshotDefPtr> SnapshotList::find(std::string_view name) const {
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return def_of(id);
}

Status SnapshotList::check_exists(std::string_view name) const {
    std::lock_guard lock(mu_);
    TRY(lookup(name));
    return ok();
}

Result<SnapshotDefPtr> SnapshotList::current() const {
    std::lock_guard lock(mu_);
    if (tree_.current() == kNoMoment)
        return fail(VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU, "the domain does not have a current snapshot");
    return def_of(tree_.current());
}

bool SnapshotList::has_current() const {
    std::lock_guard lock(mu_);
    return tree_.current() != kNoMoment;
}

std::optional<std::string> SnapshotList::current_name() const {
    std::lock_guard lock(mu_);
    if (tree_.current() == kNoMoment) return std::nullopt;
    return tree_.name(tree_.current());
}

Result<bool> SnapshotList::is_current(std::string_view name) const {
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return tree_.current() == id;
}

Result<SnapshotDefPtr> SnapshotList::parent(std::string_view name) const {
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    MomentId p = tree_.parent(id);
    if (p == kNoMoment)
        return fail(VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                    "snapshot '" + std::string(name) + "' does not have a parent");
    return def_of(p);
}

Result<std::string> SnapshotList::parent_name(std::string_view name) const {
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    MomentId p = tree_.parent(id);
    if (p == kNoMoment)
        return fail(VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                    "snapshot '" + std::string(name) + "' does not have a parent");
    return tree_.name(p);
}

// ---- listings ----

Result<int> SnapshotList::num(unsigned flags) const {
    TRY(check_flags(flags, VIR_DOMAIN_SNAPSHOT_LIST_ROOTS | kFiltersAll, "qemuDomainSnapshotNum"));
    std::lock_guard lock(mu_);
    return int(tree_.count(kNoMoment, flags, snapshot_list_flags(), predicate()));
}

Result<std::vector<std::string>> SnapshotList::list_names(unsigned flags, int maxnames) const {
    TRY(check_flags(flags, VIR_DOMAIN_SNAPSHOT_LIST_ROOTS | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL | kFiltersAll,
                    "qemuDomainSnapshotListNames"));
    std::lock_guard lock(mu_);
    return names(tree_.list(kNoMoment, flags, snapshot_list_flags(), predicate()), size_t(std::max(maxnames, 0)));
}

Result<std::vector<std::string>> SnapshotList::list_all(unsigned flags) const {
    TRY(check_flags(flags, VIR_DOMAIN_SNAPSHOT_LIST_ROOTS | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL | kFiltersAll,
                    "qemuDomainListAllSnapshots"));
    std::lock_guard lock(mu_);
    return names(tree_.list(kNoMoment, flags, snapshot_list_flags(), predicate()), SIZE_MAX);
}

Result<int> SnapshotList::num_children(std::string_view name, unsigned flags) const {
    TRY(check_flags(flags, VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | kFiltersAll, "qemuDomainSnapshotNumChildren"));
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return int(tree_.count(id, flags, snapshot_list_flags(), predicate()));
}

Result<std::vector<std::string>> SnapshotList::list_children_names(std::string_view name, unsigned flags,
                                                                   int maxnames) const {
    TRY(check_flags(flags,
                    VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL | kFiltersAll,
                    "qemuDomainSnapshotListChildrenNames"));
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return names(tree_.list(id, flags, snapshot_list_flags(), predicate()), size_t(std::max(maxnames, 0)));
}

Result<std::vector<std::string>> SnapshotList::list_all_children(std::string_view name, unsigned flags) const {
    TRY(check_flags(flags,
                    VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL | kFiltersAll,
                    "qemuDomainSnapshotListAllChildren"));
    std::lock_guard lock(mu_);
    MomentId id = TRY(lookup(name));
    return names(tree_.list(id, flags, snapshot_list_flags(), predicate()), SIZE_MAX);
}

Result<std::string> SnapshotList::get_xml(std::string_view name, unsigned flags) const {
    TRY(check_flags(flags, VIR_DOMAIN_SNAPSHOT_XML_SECURE, "qemuDomainSnapshotGetXMLDesc"));
    const bool secure = (flags & VIR_DOMAIN_SNAPSHOT_XML_SECURE) != 0;
    SnapshotDefPtr def;
    Uuid uuid;
    uint64_t generation;
    {
        std::lock_guard lock(mu_);
        MomentId id = TRY(lookup(name));
        const Entry &e = tree_.payload(id);
        if (e.xml[secure]) return *e.xml[secure];
        def = TRY(peek_def(id));
        uuid = domain_uuid_;
        generation = e.generation;
    }
    // Formatting happens outside the lock: the definition is immutable.
    auto xml = std::make_shared<const std::string>(def->format(uuid, secure ? kSnapshotFormatSecure : 0u));
    {
        std::lock_guard lock(mu_);
        // Kept only if no change replaced the entry meanwhile.
        MomentId id = tree_.find(name);
        if (id != kNoMoment && tree_.payload(id).generation == generation) tree_.payload(id).xml[secure] = xml;
    }
    return *xml;
}

// ---- changes ----

Status SnapshotList::switch_current(MomentId id) {
    MomentId old = tree_.current();
    if (old == id) return ok();
    TRY(rewrite_claim(id, true));
    tree_.set_current(id);
    if (old != kNoMoment) {
        Status st = rewrite_claim(old, false);
        if (!st)
            VS_WARN("failed to clear current flag of snapshot '%s': %s", tree_.name(old).c_str(),
                    st.error().message().c_str());
    }
    return ok();
}

Result<SnapshotDefPtr> SnapshotList::redefine(std::unique_ptr<SnapshotDef> def, unsigned create_flags) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    const std::string &name = def->name;

    // virDomainSnapshotRedefinePrep: cycles first, then RedefineValidate, then alignment.
    TRY(tree_.check_parent(name, def->parent_name));
    MomentId other = tree_.find(name);
    SnapshotDefPtr other_ptr;
    if (other != kNoMoment) other_ptr = TRY(def_of(other));
    const SnapshotDef *otherdef = other_ptr.get();

    if ((create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY) && def->state != SnapshotState::DiskSnapshot)
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                    "disk-only flag for snapshot " + name + " requires disk-snapshot state");
    if (def->domain && !(def->domain->uuid == domain_uuid_))
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                    "definition for snapshot " + name + " must use uuid " + domain_uuid_.str());
    if (otherdef) {
        if (is_online(otherdef->state) != is_online(def->state))
            return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                        "cannot change between online and offline snapshot state in snapshot " + name);
        if ((otherdef->state == SnapshotState::DiskSnapshot) != (def->state == SnapshotState::DiskSnapshot))
            return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                        "cannot change between disk only and full system in snapshot " + name);
        // libvirt also runs virDomainDefCheckABIStability here when both
        // have a <domain>; virtsnap has no ABI comparison yet.
        if (otherdef->domain && !def->domain) def->domain = otherdef->domain->clone();
    }
    TRY(snapshot_align_disks(*def, otherdef ? otherdef->domain.get() : nullptr,
                             snapshot_redefine_align_location(*def), true));
    def->current = false;

    const bool make_current = (create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT) != 0;
    const bool stays_current = other != kNoMoment && tree_.current() == other;
    SnapshotDefPtr stored(std::move(def));
    Entry entry = TRY(write(stored, make_current || stays_current));

    MomentId id = other;
    if (id != kNoMoment) {
        tree_.payload(id) = std::move(entry);
        MomentId new_parent = stored->parent_name.empty() ? kNoMoment : tree_.find(stored->parent_name);
        Status moved = tree_.reparent(id, new_parent);  // checked above, cannot fail
        if (!moved) VS_ERROR("reparenting snapshot '%s' failed: %s", stored->name.c_str(),
                             moved.error().message().c_str());
    } else {
        auto added = tree_.add(stored->name, stored->parent_name, std::move(entry));
        if (!added) {
            Status st = (index_dirty_ = true, store_->remove(stored->name, file::Durability::Deferred));
            (void)st;
            return fail(std::move(added).error());
        }
        id = *added;
    }
    if (make_current && tree_.current() != id) {
        MomentId old = tree_.current();
        tree_.set_current(id);
        if (old != kNoMoment) {
            Status st = rewrite_claim(old, false);
            if (!st)
                VS_WARN("failed to clear current flag of snapshot '%s': %s", tree_.name(old).c_str(),
                        st.error().message().c_str());
        }
    }
    // A redefined snapshot is usually one of thousands being imported, and
    // its parsed definition (the embedded <domain> above all) takes ~24 KiB
    // against ~0.7 KiB for its place in the tree: like a snapshot known from
    // the index, it is parsed again from its file when something needs it.
    tree_.payload(id).def.reset();
    return stored;
}

Result<SnapshotDefPtr> SnapshotList::add_created(std::unique_ptr<SnapshotDef> def, bool make_current) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    if (tree_.contains(def->name))
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN, "domain moment " + def->name + " already exists");
    if (!def->parent_name.empty() && !tree_.contains(def->parent_name)) {
        VS_WARN("parent snapshot '%s' of new snapshot '%s' is gone; adding it as a root", def->parent_name.c_str(),
                def->name.c_str());
        def->parent_name.clear();
    }
    def->current = false;
    SnapshotDefPtr stored(std::move(def));
    Entry entry = TRY(write(stored, make_current));

    auto added = tree_.add(stored->name, stored->parent_name, std::move(entry));
    if (!added) {
        Status st = (index_dirty_ = true, store_->remove(stored->name, file::Durability::Deferred));
        (void)st;
        return fail(std::move(added).error());
    }
    if (make_current) {
        MomentId old = tree_.current();
        tree_.set_current(*added);
        if (old != kNoMoment) {
            Status st = rewrite_claim(old, false);
            if (!st)
                VS_WARN("failed to clear current flag of snapshot '%s': %s", tree_.name(old).c_str(),
                        st.error().message().c_str());
        }
    }
    return stored;
}

Status SnapshotList::set_current(std::string_view name) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    MomentId id = TRY(lookup(name));
    return switch_current(id);
}

Result<SnapshotDefPtr> SnapshotList::replace_def(std::unique_ptr<SnapshotDef> def) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    MomentId id = TRY(lookup(def->name));
    MomentId p = tree_.parent(id);
    def->parent_name = p == kNoMoment ? std::string() : tree_.name(p);
    def->current = false;
    SnapshotDefPtr stored(std::move(def));
    tree_.payload(id) = TRY(write(stored, tree_.current() == id));
    return stored;
}

Result<SnapshotRemoval> SnapshotList::remove_metadata(std::string_view name, MomentRemoveMode mode) {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    const MomentId id = TRY(lookup(name));
    const MomentId parent = tree_.parent(id);
    const MomentId cur = tree_.current();
    SnapshotRemoval out;

    if (mode == MomentRemoveMode::Single) {
        // 1. Children name the grandparent, in their files first. A failure
        //    puts back the files already rewritten and changes nothing.
        const std::string parent_name = parent == kNoMoment ? std::string() : tree_.name(parent);
        std::vector<MomentId> children = tree_.children(id);
        std::vector<Entry> moved;
        moved.reserve(children.size());
        for (MomentId c : children) {
            auto d = std::make_unique<SnapshotDef>(*TRY(def_of(c)));
            d->parent_name = parent_name;
            auto written = write(SnapshotDefPtr(std::move(d)), cur == c);
            if (!written) {
                for (size_t i = 0; i < moved.size(); i++) {
                    auto back = write(tree_.payload(children[i]).def, cur == children[i]);
                    if (!back) VS_WARN("cannot restore snapshot file of '%s'", tree_.name(children[i]).c_str());
                    else tree_.payload(children[i]) = std::move(*back);
                }
                return fail(std::move(written).error());
            }
            moved.push_back(std::move(*written));
        }
        // 2. The parent inherits "current" (a failure only loses current).
        bool parent_current = false;
        if (cur == id && parent != kNoMoment) {
            Status st = rewrite_claim(parent, true);
            if (st) parent_current = true;
            else VS_WARN("failed to set parent snapshot '%s' as current", parent_name.c_str());
        }
        // 3. The file goes last, so a crash before never loses the snapshot.
        index_dirty_ = true;
        Status gone = store_->remove(name, file::Durability::Deferred);
        if (!gone) VS_WARN("Failed to unlink snapshot file of '%s': %s", std::string(name).c_str(),
                           gone.error().message().c_str());

        // The removed definition goes to the caller, parsed if it was not.
        SnapshotDefPtr removed_def;
        if (auto d = def_of(id)) removed_def = *d;
        for (size_t i = 0; i < children.size(); i++) {
            tree_.payload(children[i]) = std::move(moved[i]);
            out.reparented.push_back(tree_.name(children[i]));
        }
        std::string removed_name(name);
        auto removed = tree_.remove(id);
        (void)removed;
        out.removed.emplace_back(std::move(removed_name), std::move(removed_def));
        if (parent_current) tree_.set_current(parent);
    } else {
        const std::vector<MomentId> desc = tree_.descendants(id);
        const bool cur_below = cur != kNoMoment && cur != id && tree_.is_ancestor(id, cur);
        MomentId new_current = cur;
        if (mode == MomentRemoveMode::ChildrenOnly) {
            if (cur_below) {
                Status st = rewrite_claim(id, true);
                if (!st) {
                    VS_WARN("%s", st.error().message().c_str());
                    return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                                "failed to set snapshot '" + std::string(name) + "' as current");
                }
                new_current = id;
            }
        } else if (cur == id || cur_below) {
            // libvirt makes the snapshot current, then discarding it moves
            // current to its parent.
            new_current = kNoMoment;
            if (parent != kNoMoment) {
                Status st = rewrite_claim(parent, true);
                if (st) new_current = parent;
                else VS_WARN("failed to set parent snapshot '%s' as current", tree_.name(parent).c_str());
            }
        }
        // Children before parents: a crash leaves no file whose parent is gone.
        // Definitions go to the caller: parse those not parsed yet while the files exist.
        // (One that cannot be parsed goes as a null definition.)
        for (MomentId d : desc)
            if (!def_of(d)) VS_WARN("removing snapshot '%s' without its definition", tree_.name(d).c_str());
        if (mode == MomentRemoveMode::WithChildren && !def_of(id))
            VS_WARN("removing snapshot '%s' without its definition", std::string(name).c_str());
        index_dirty_ = true;
        for (auto it = desc.rbegin(); it != desc.rend(); ++it) {
            Status gone = store_->remove(tree_.name(*it), file::Durability::Deferred);
            if (!gone) VS_WARN("Failed to unlink snapshot file of '%s'", tree_.name(*it).c_str());
        }
        if (mode == MomentRemoveMode::WithChildren) {
            Status gone = store_->remove(name, file::Durability::Deferred);
            if (!gone) VS_WARN("Failed to unlink snapshot file of '%s'", std::string(name).c_str());
            auto removed = tree_.remove_with_descendants(id);
            // Pre-order with the snapshot first; libvirt discards it last.
            for (size_t i = 1; i < removed.size(); i++)
                out.removed.emplace_back(std::move(removed[i].first), std::move(removed[i].second.def));
            out.removed.emplace_back(std::move(removed[0].first), std::move(removed[0].second.def));
        } else {
            for (MomentId c : tree_.children(id)) {
                auto removed = tree_.remove_with_descendants(c);
                for (auto &r : removed) out.removed.emplace_back(std::move(r.first), std::move(r.second.def));
            }
        }
        if (new_current != kNoMoment) tree_.set_current(new_current);
        else tree_.clear_current();
    }

    out.current_changed = tree_.current() != cur || cur == id;
    if (tree_.current() != kNoMoment) out.current = tree_.name(tree_.current());
    return out;
}

Status SnapshotList::remove_all() {
    std::lock_guard lock(mu_);
    TRY(require_loaded());
    Status st = store_->remove_all();
    Status index_gone = file::remove(index_path_, VIR_FROM_DOMAIN_SNAPSHOT);
    if (!index_gone) VS_WARN("%s", index_gone.error().message().c_str());
    if (st) {
        tree_.clear();
        return st;
    }
    // Partly done: forget exactly the snapshots whose files are gone, so
    // memory keeps matching the disk.
    std::vector<MomentId> gone;
    for (MomentId id : tree_.in_creation_order()) {
        auto path = store_->path_for(tree_.name(id));
        if (path && !file::exists(*path)) gone.push_back(id);
    }
    for (MomentId id : gone) {
        MomentId p = tree_.parent(id);
        bool was_current = tree_.current() == id;
        auto removed = tree_.remove(id);
        (void)removed;
        if (was_current && p != kNoMoment) tree_.set_current(p);
    }
    return st;
}

}  // namespace virtsnap::conf
