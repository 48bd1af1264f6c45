// qemu_driver_snapshot_query.cc - the read side of libvirt's snapshot API:
// lookups, listings, the tree relations and the XML of a snapshot.
//
// All of it is answered from the domain's SnapshotList without taking the
// domain job, so queries keep working while a snapshot job runs.

#include "daemon/qemu_driver.hh"

#include "daemon/check_flags.hh"

namespace virtsnap::daemon {

Result<std::shared_ptr<conf::SnapshotList>> QemuDriver::snapshots_of(const std::shared_ptr<qemu::DomainObj> &dom) {
    std::string name;
    {
        std::lock_guard lock(dom->mu);
        if (dom->snapshots) return dom->snapshots;
        name = dom->name();
    }
    auto list = std::make_shared<conf::SnapshotList>();
    TRY(list->load(layout_, name, dom->uuid));
    std::lock_guard lock(dom->mu);
    if (!dom->snapshots) dom->snapshots = list;
    return dom->snapshots;
}

Result<std::pair<std::shared_ptr<qemu::DomainObj>, std::shared_ptr<conf::SnapshotList>>>
QemuDriver::snapshot_domain(const rpc::DomainRef &ref) {
    auto dom = TRY(find(ref));
    auto list = TRY(snapshots_of(dom));
    return std::make_pair(dom, list);
}

namespace {

rpc::SnapshotRef snap_ref(const rpc::DomainRef &dom, std::string name) { return rpc::SnapshotRef{std::move(name), dom}; }

std::vector<rpc::SnapshotRef> snap_refs(const rpc::DomainRef &dom, std::vector<std::string> names) {
    std::vector<rpc::SnapshotRef> out;
    out.reserve(names.size());
    for (auto &n : names) out.push_back(snap_ref(dom, std::move(n)));
    return out;
}

}  // namespace

Result<int32_t> QemuDriver::domain_snapshot_num(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    auto [dom, list] = TRY(snapshot_domain(ref));
    return int32_t(TRY(list->num(flags)));
}

Result<std::vector<std::string>> QemuDriver::domain_snapshot_list_names(const rpc::Client &, const rpc::DomainRef &ref,
                                                                        int32_t maxnames, uint32_t flags) {
    auto [dom, list] = TRY(snapshot_domain(ref));
    return list->list_names(flags, maxnames);
}

Result<std::vector<rpc::SnapshotRef>> QemuDriver::domain_list_all_snapshots(const rpc::Client &,
                                                                            const rpc::DomainRef &ref,
                                                                            uint32_t flags) {
    auto [dom, list] = TRY(snapshot_domain(ref));
    return snap_refs(ref, TRY(list->list_all(flags)));
}

Result<rpc::SnapshotRef> QemuDriver::domain_snapshot_lookup_by_name(const rpc::Client &, const rpc::DomainRef &ref,
                                                                    const std::string &name, uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainSnapshotLookupByName"));
    auto [dom, list] = TRY(snapshot_domain(ref));
    TRY(list->check_exists(name));
    return snap_ref(ref, name);
}

Result<bool> QemuDriver::domain_has_current_snapshot(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainHasCurrentSnapshot"));
    auto [dom, list] = TRY(snapshot_domain(ref));
    return list->has_current();
}

Result<rpc::SnapshotRef> QemuDriver::domain_snapshot_current(const rpc::Client &, const rpc::DomainRef &ref,
                                                             uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainSnapshotCurrent"));
    auto [dom, list] = TRY(snapshot_domain(ref));
    auto name = list->current_name();
    if (!name)
        return fail(VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU, "the domain does not have a current snapshot");
    return snap_ref(ref, *name);
}

Result<std::string> QemuDriver::domain_snapshot_get_xml_desc(const rpc::Client &c, const rpc::SnapshotRef &snap,
                                                             uint32_t flags) {
    if ((flags & VIR_DOMAIN_SNAPSHOT_XML_SECURE) && c.read_only)
        return fail(VIR_ERR_OPERATION_DENIED, VIR_FROM_DOMAIN_SNAPSHOT,
                    "virDomainSnapshotGetXMLDesc with secure flag");
    auto [dom, list] = TRY(snapshot_domain(snap.dom));
    return list->get_xml(snap.name, flags);
}

Result<rpc::SnapshotRef> QemuDriver::domain_snapshot_get_parent(const rpc::Client &, const rpc::SnapshotRef &snap,
                                                                uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainSnapshotGetParent"));
    auto [dom, list] = TRY(snapshot_domain(snap.dom));
    std::string parent = TRY(list->parent_name(snap.name));
    return snap_ref(snap.dom, parent);
}

Result<int32_t> QemuDriver::domain_snapshot_num_children(const rpc::Client &, const rpc::SnapshotRef &snap,
                                                         uint32_t flags) {
    auto [dom, list] = TRY(snapshot_domain(snap.dom));
    return int32_t(TRY(list->num_children(snap.name, flags)));
}

Result<std::vector<std::string>> QemuDriver::domain_snapshot_list_children_names(const rpc::Client &,
                                                                                 const rpc::SnapshotRef &snap,
                                                                                 int32_t maxnames, uint32_t flags) {
    auto [dom, list] = TRY(snapshot_domain(snap.dom));
    return list->list_children_names(snap.name, flags, maxnames);
}

Result<std::vector<rpc::SnapshotRef>> QemuDriver::domain_snapshot_list_all_children(const rpc::Client &,
                                                                                    const rpc::SnapshotRef &snap,
                                                                                    uint32_t flags) {
    auto [dom, list] = TRY(snapshot_domain(snap.dom));
    return snap_refs(snap.dom, TRY(list->list_all_children(snap.name, flags)));
}

Result<bool> QemuDriver::domain_snapshot_is_current(const rpc::Client &, const rpc::SnapshotRef &snap,
                                                    uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainSnapshotIsCurrent"));
    auto [dom, list] = TRY(snapshot_domain(snap.dom));
    return list->is_current(snap.name);
}

Result<bool> QemuDriver::domain_snapshot_has_metadata(const rpc::Client &, const rpc::SnapshotRef &snap,
                                                      uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainSnapshotHasMetadata"));
    auto [dom, list] = TRY(snapshot_domain(snap.dom));
    TRY(list->check_exists(snap.name));
    return true;  // every snapshot virtsnapd knows has metadata
}

}  // namespace virtsnap::daemon
