// dispatch.cc - REMOTE procedures answered by the Driver, one small function
// each, and the sorted table that names them.

#include "rpc/dispatch.hh"

#include "rpc/remote_protocol.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <array>

namespace virtsnap::rpc {

Error read_only_error(const char *api) {
    return make_error(VIR_ERR_OPERATION_DENIED, VIR_FROM_DOMAIN, std::string("read only access prevents ") + api);
}

namespace {

using C = CallContext;

template <typename Args, typename Ret, Result<Ret> (*F)(C &, Args &)>
Result<Bytes> handle(C &c, std::span<const uint8_t> payload) {
    Args args = TRY(decode<Args>(payload));
    Ret ret = TRY(F(c, args));
    xdr::Encoder e;
    TRY(encode(e, ret));
    return e.take();
}

// libvirt fails a read-only caller asking for secrets with these words.
Status deny_secure(const C &c, uint32_t flags, uint32_t secure_flag, const char *what) {
    if (c.client.read_only && (flags & secure_flag))
        return fail(VIR_ERR_OPERATION_DENIED, VIR_FROM_DOMAIN, what);
    return ok();
}

Status check_max(int32_t maxnames, uint32_t limit, const char *what) {
    if (maxnames < 0 || uint32_t(maxnames) > limit) return fail(VIR_ERR_RPC, VIR_FROM_RPC, what);
    return ok();
}

// ---- Connection ----
Result<StringRet> get_type(C &c, Void &) { return StringRet{TRY(c.driver.connect_get_type(c.client))}; }
Result<UHyperRet> get_version(C &c, Void &) { return UHyperRet{TRY(c.driver.connect_get_version(c.client))}; }
Result<UHyperRet> get_lib_version(C &c, Void &) {
    return UHyperRet{TRY(c.driver.connect_get_lib_version(c.client))};
}
Result<StringRet> get_hostname(C &c, Void &) { return StringRet{TRY(c.driver.connect_get_hostname(c.client))}; }
Result<StringRet> get_uri(C &c, Void &) { return StringRet{TRY(c.driver.connect_get_uri(c.client))}; }
Result<StringRet> get_capabilities(C &c, Void &) {
    return StringRet{TRY(c.driver.connect_get_capabilities(c.client))};
}
Result<NodeGetInfoRet> node_get_info(C &c, Void &) {
    NodeInfo n = TRY(c.driver.node_get_info(c.client));
    NodeGetInfoRet r;
    r.model.value = n.model;
    r.memory = n.memory_kib;
    r.cpus = n.cpus;
    r.mhz = n.mhz;
    r.nodes = n.nodes;
    r.sockets = n.sockets;
    r.cores = n.cores;
    r.threads = n.threads;
    return r;
}
Result<NodeGetSecurityModelRet> node_get_security_model(C &c, Void &) {
    SecurityModel m = TRY(c.driver.node_get_security_model(c.client));
    NodeGetSecurityModelRet r;
    // libvirtd sends the C strings with their terminating NUL counted.
    r.model.value = m.model + '\0';
    r.doi.value = m.doi + '\0';
    return r;
}
Result<ListAllDomainsRet> list_all_domains(C &c, NeedResultsArgs &a) {
    std::vector<DomainRef> doms = TRY(c.driver.connect_list_all_domains(c.client, a.flags));
    if (doms.size() > kDomainListMax)
        return fail(VIR_ERR_RPC, VIR_FROM_RPC,
                    "Too many domains '" + std::to_string(doms.size()) + "' for limit '" +
                        std::to_string(kDomainListMax) + "'");
    ListAllDomainsRet r;
    r.ret = uint32_t(doms.size());
    if (a.need_results) r.domains = std::move(doms);
    return r;
}
// Nothing but domains exists here; empty lists keep virt-manager quiet.
Result<IntRet> num_of_networks(C &, Void &) { return IntRet{0}; }
Result<IntRet> node_num_of_devices(C &, NodeNumOfDevicesArgs &) { return IntRet{0}; }
Result<NamesRet> node_list_devices(C &, NodeListDevicesArgs &) { return NamesRet{}; }
Result<EmptyListRet> list_all_empty(C &, NeedResultsArgs &) { return EmptyListRet{}; }

// ---- Domains ----
Result<DomRet> lookup_by_name(C &c, LookupByNameArgs &a) {
    return DomRet{TRY(c.driver.domain_lookup_by_name(c.client, a.name))};
}
Result<DomRet> lookup_by_uuid(C &c, LookupByUuidArgs &a) {
    return DomRet{TRY(c.driver.domain_lookup_by_uuid(c.client, a.uuid))};
}
Result<DomRet> lookup_by_id(C &c, LookupByIdArgs &a) {
    return DomRet{TRY(c.driver.domain_lookup_by_id(c.client, a.id))};
}
Result<DomRet> define_xml(C &c, DefineXmlArgs &a) {
    return DomRet{TRY(c.driver.domain_define_xml(c.client, a.xml, 0))};
}
Result<DomRet> define_xml_flags(C &c, DefineXmlFlagsArgs &a) {
    return DomRet{TRY(c.driver.domain_define_xml(c.client, a.xml, a.flags))};
}
Result<Void> undefine(C &c, DomArgs &a) {
    TRY(c.driver.domain_undefine(c.client, a.dom, 0));
    return Void{};
}
Result<Void> undefine_flags(C &c, DomFlagsArgs &a) {
    TRY(c.driver.domain_undefine(c.client, a.dom, a.flags));
    return Void{};
}
Result<Void> create(C &c, DomArgs &a) {
    TRY(c.driver.domain_create(c.client, a.dom, 0));
    return Void{};
}
Result<DomRet> create_with_flags(C &c, DomFlagsArgs &a) {
    return DomRet{TRY(c.driver.domain_create(c.client, a.dom, a.flags))};
}
Result<Void> destroy(C &c, DomArgs &a) {
    TRY(c.driver.domain_destroy(c.client, a.dom, 0));
    return Void{};
}
Result<Void> destroy_flags(C &c, DomFlagsArgs &a) {
    TRY(c.driver.domain_destroy(c.client, a.dom, a.flags));
    return Void{};
}
Result<Void> shutdown(C &c, DomArgs &a) {
    TRY(c.driver.domain_shutdown(c.client, a.dom, 0));
    return Void{};
}
Result<Void> shutdown_flags(C &c, DomFlagsArgs &a) {
    TRY(c.driver.domain_shutdown(c.client, a.dom, a.flags));
    return Void{};
}
Result<Void> reboot(C &c, DomFlagsArgs &a) {
    TRY(c.driver.domain_reboot(c.client, a.dom, a.flags));
    return Void{};
}
Result<Void> suspend(C &c, DomArgs &a) {
    TRY(c.driver.domain_suspend(c.client, a.dom));
    return Void{};
}
Result<Void> resume(C &c, DomArgs &a) {
    TRY(c.driver.domain_resume(c.client, a.dom));
    return Void{};
}
Result<StringRet> get_xml_desc(C &c, DomFlagsArgs &a) {
    TRY(deny_secure(c, a.flags, VIR_DOMAIN_XML_SECURE, "virDomainGetXMLDesc with secure flag"));
    return StringRet{TRY(c.driver.domain_get_xml_desc(c.client, a.dom, a.flags))};
}
Result<DomainGetInfoRet> get_info(C &c, DomArgs &a) {
    DomainInfo i = TRY(c.driver.domain_get_info(c.client, a.dom));
    return DomainGetInfoRet{i.state, i.max_mem_kib, i.memory_kib, i.nr_virt_cpu, i.cpu_time_ns};
}
Result<DomainGetStateRet> get_state(C &c, DomFlagsArgs &a) {
    DomainState s = TRY(c.driver.domain_get_state(c.client, a.dom, a.flags));
    return DomainGetStateRet{s.state, s.reason};
}
Result<StringRet> get_os_type(C &c, DomArgs &a) {
    return StringRet{TRY(c.driver.domain_get_os_type(c.client, a.dom))};
}
Result<IntRet> is_active(C &c, DomArgs &a) { return IntRet{TRY(c.driver.domain_is_active(c.client, a.dom))}; }
Result<IntRet> is_persistent(C &c, DomArgs &a) {
    return IntRet{TRY(c.driver.domain_is_persistent(c.client, a.dom))};
}
Result<IntRet> get_autostart(C &c, DomArgs &a) {
    return IntRet{TRY(c.driver.domain_get_autostart(c.client, a.dom))};
}
Result<Void> set_autostart(C &c, SetAutostartArgs &a) {
    TRY(c.driver.domain_set_autostart(c.client, a.dom, a.autostart != 0));
    return Void{};
}
Result<DomainGetBlockInfoRet> get_block_info(C &c, PathFlagsArgs &a) {
    BlockInfo b = TRY(c.driver.domain_get_block_info(c.client, a.dom, a.path, a.flags));
    return DomainGetBlockInfoRet{b.allocation, b.capacity, b.physical};
}
Result<Void> save(C &c, DomainSaveArgs &a) {
    TRY(c.driver.domain_save(c.client, a.dom, a.to, std::nullopt, 0));
    return Void{};
}
Result<Void> save_flags(C &c, DomainSaveFlagsArgs &a) {
    TRY(c.driver.domain_save(c.client, a.dom, a.to, a.dxml, a.flags));
    return Void{};
}
Result<Void> restore(C &c, DomainRestoreArgs &a) {
    TRY(c.driver.domain_restore(c.client, a.from, std::nullopt, 0));
    return Void{};
}
Result<Void> restore_flags(C &c, DomainRestoreFlagsArgs &a) {
    TRY(c.driver.domain_restore(c.client, a.from, a.dxml, a.flags));
    return Void{};
}
Result<Void> managed_save(C &c, DomFlagsArgs &a) {
    TRY(c.driver.domain_managed_save(c.client, a.dom, a.flags));
    return Void{};
}
Result<Void> managed_save_remove(C &c, DomFlagsArgs &a) {
    TRY(c.driver.domain_managed_save_remove(c.client, a.dom, a.flags));
    return Void{};
}
Result<IntRet> has_managed_save_image(C &c, DomFlagsArgs &a) {
    return IntRet{TRY(c.driver.domain_has_managed_save_image(c.client, a.dom, a.flags))};
}
Result<DomainGetSecurityLabelRet> get_security_label(C &c, DomArgs &a) {
    SecurityLabel l = TRY(c.driver.domain_get_security_label(c.client, a.dom));
    DomainGetSecurityLabelRet r;
    r.label.value = l.label + '\0';  // NUL counted, as libvirtd sends it
    r.enforcing = l.enforcing;
    return r;
}
Result<DomainGetMessagesRet> get_messages(C &c, DomFlagsArgs &a) {
    return DomainGetMessagesRet{TRY(c.driver.domain_get_messages(c.client, a.dom, a.flags))};
}

// ---- Jobs ----
Result<DomainGetJobInfoRet> get_job_info(C &c, DomArgs &a) {
    JobInfo j = TRY(c.driver.domain_get_job_info(c.client, a.dom));
    return DomainGetJobInfoRet{j.type,           j.time_elapsed, j.time_remaining, j.data_total,
                               j.data_processed, j.data_remaining, j.mem_total,    j.mem_processed,
                               j.mem_remaining,  j.file_total,   j.file_processed, j.file_remaining};
}
Result<DomainGetJobStatsRet> get_job_stats(C &c, DomFlagsArgs &a) {
    JobStats s = TRY(c.driver.domain_get_job_stats(c.client, a.dom, a.flags));
    return DomainGetJobStatsRet{s.type, std::move(s.params)};
}
Result<Void> abort_job(C &c, DomArgs &a) {
    TRY(c.driver.domain_abort_job(c.client, a.dom, 0));
    return Void{};
}
Result<Void> abort_job_flags(C &c, DomFlagsArgs &a) {
    TRY(c.driver.domain_abort_job(c.client, a.dom, a.flags));
    return Void{};
}

// ---- Snapshots ----
Result<SnapRet> snapshot_create_xml(C &c, SnapshotCreateXmlArgs &a) {
    return SnapRet{TRY(c.driver.domain_snapshot_create_xml(c.client, a.dom, a.xml_desc, a.flags))};
}
Result<StringRet> snapshot_get_xml_desc(C &c, SnapFlagsArgs &a) {
    TRY(deny_secure(c, a.flags, VIR_DOMAIN_SNAPSHOT_XML_SECURE, "virDomainSnapshotGetXMLDesc with secure flag"));
    return StringRet{TRY(c.driver.domain_snapshot_get_xml_desc(c.client, a.snap, a.flags))};
}
Result<IntRet> snapshot_num(C &c, DomFlagsArgs &a) {
    return IntRet{TRY(c.driver.domain_snapshot_num(c.client, a.dom, a.flags))};
}
Result<SnapshotNamesRet> snapshot_list_names(C &c, SnapshotListNamesArgs &a) {
    TRY(check_max(a.maxnames, kSnapshotListMax, "maxnames > REMOTE_DOMAIN_SNAPSHOT_LIST_MAX"));
    return SnapshotNamesRet{TRY(c.driver.domain_snapshot_list_names(c.client, a.dom, a.maxnames, a.flags))};
}
Result<SnapRet> snapshot_lookup_by_name(C &c, SnapshotLookupByNameArgs &a) {
    return SnapRet{TRY(c.driver.domain_snapshot_lookup_by_name(c.client, a.dom, a.name, a.flags))};
}
Result<IntRet> has_current_snapshot(C &c, DomFlagsArgs &a) {
    return IntRet{TRY(c.driver.domain_has_current_snapshot(c.client, a.dom, a.flags))};
}
Result<SnapRet> snapshot_current(C &c, DomFlagsArgs &a) {
    return SnapRet{TRY(c.driver.domain_snapshot_current(c.client, a.dom, a.flags))};
}
Result<Void> revert_to_snapshot(C &c, SnapFlagsArgs &a) {
    TRY(c.driver.domain_revert_to_snapshot(c.client, a.snap, a.flags));
    return Void{};
}
Result<Void> snapshot_delete(C &c, SnapFlagsArgs &a) {
    TRY(c.driver.domain_snapshot_delete(c.client, a.snap, a.flags));
    return Void{};
}
Result<SnapRet> snapshot_get_parent(C &c, SnapFlagsArgs &a) {
    return SnapRet{TRY(c.driver.domain_snapshot_get_parent(c.client, a.snap, a.flags))};
}
Result<IntRet> snapshot_num_children(C &c, SnapFlagsArgs &a) {
    return IntRet{TRY(c.driver.domain_snapshot_num_children(c.client, a.snap, a.flags))};
}
Result<SnapshotNamesRet> snapshot_list_children_names(C &c, SnapshotListChildrenNamesArgs &a) {
    TRY(check_max(a.maxnames, kSnapshotListMax, "maxnames > REMOTE_DOMAIN_SNAPSHOT_LIST_MAX"));
    return SnapshotNamesRet{
        TRY(c.driver.domain_snapshot_list_children_names(c.client, a.snap, a.maxnames, a.flags))};
}
Result<IntRet> snapshot_is_current(C &c, SnapFlagsArgs &a) {
    return IntRet{TRY(c.driver.domain_snapshot_is_current(c.client, a.snap, a.flags))};
}
Result<IntRet> snapshot_has_metadata(C &c, SnapFlagsArgs &a) {
    return IntRet{TRY(c.driver.domain_snapshot_has_metadata(c.client, a.snap, a.flags))};
}
SnapshotListRet snapshot_list(std::vector<SnapshotRef> snaps, bool need_results) {
    SnapshotListRet r;
    r.ret = int32_t(snaps.size());
    if (need_results) r.snapshots = std::move(snaps);
    return r;
}
Result<SnapshotListRet> list_all_snapshots(C &c, ListAllSnapshotsArgs &a) {
    return snapshot_list(TRY(c.driver.domain_list_all_snapshots(c.client, a.dom, a.flags)), a.need_results);
}
Result<SnapshotListRet> snapshot_list_all_children(C &c, SnapshotListAllChildrenArgs &a) {
    return snapshot_list(TRY(c.driver.domain_snapshot_list_all_children(c.client, a.snapshot, a.flags)),
                         a.need_results);
}

// ---- Checkpoints and backup ----
Result<CheckpointRet> checkpoint_create_xml(C &c, CheckpointCreateXmlArgs &a) {
    return CheckpointRet{TRY(c.driver.domain_checkpoint_create_xml(c.client, a.dom, a.xml_desc, a.flags))};
}
Result<StringRet> checkpoint_get_xml_desc(C &c, CheckpointFlagsArgs &a) {
    TRY(deny_secure(c, a.flags, VIR_DOMAIN_CHECKPOINT_XML_SECURE,
                    "virDomainCheckpointGetXMLDesc with secure flag"));
    return StringRet{TRY(c.driver.domain_checkpoint_get_xml_desc(c.client, a.checkpoint, a.flags))};
}
CheckpointListRet checkpoint_list(std::vector<CheckpointRef> cps, bool need_results) {
    CheckpointListRet r;
    r.ret = int32_t(cps.size());
    if (need_results) r.checkpoints = std::move(cps);
    return r;
}
Result<CheckpointListRet> list_all_checkpoints(C &c, ListAllCheckpointsArgs &a) {
    return checkpoint_list(TRY(c.driver.domain_list_all_checkpoints(c.client, a.dom, a.flags)), a.need_results);
}
Result<CheckpointListRet> checkpoint_list_all_children(C &c, CheckpointListAllChildrenArgs &a) {
    return checkpoint_list(TRY(c.driver.domain_checkpoint_list_all_children(c.client, a.checkpoint, a.flags)),
                           a.need_results);
}
Result<CheckpointRet> checkpoint_lookup_by_name(C &c, CheckpointLookupByNameArgs &a) {
    return CheckpointRet{TRY(c.driver.domain_checkpoint_lookup_by_name(c.client, a.dom, a.name, a.flags))};
}
Result<CheckpointRet> checkpoint_get_parent(C &c, CheckpointFlagsArgs &a) {
    return CheckpointRet{TRY(c.driver.domain_checkpoint_get_parent(c.client, a.checkpoint, a.flags))};
}
Result<Void> checkpoint_delete(C &c, CheckpointFlagsArgs &a) {
    TRY(c.driver.domain_checkpoint_delete(c.client, a.checkpoint, a.flags));
    return Void{};
}
Result<Void> backup_begin(C &c, BackupBeginArgs &a) {
    TRY(c.driver.domain_backup_begin(c.client, a.dom, a.backup_xml, a.checkpoint_xml, a.flags));
    return Void{};
}
Result<StringRet> backup_get_xml_desc(C &c, DomFlagsArgs &a) {
    return StringRet{TRY(c.driver.domain_backup_get_xml_desc(c.client, a.dom, a.flags))};
}

// ---- Block jobs ----
Result<Void> block_copy(C &c, BlockCopyArgs &a) {
    TRY(c.driver.domain_block_copy(c.client, a.dom, a.path, a.destxml, a.params, a.flags));
    return Void{};
}
Result<Void> block_rebase(C &c, BlockRebaseArgs &a) {
    TRY(c.driver.domain_block_rebase(c.client, a.dom, a.path, a.base, a.bandwidth, a.flags));
    return Void{};
}
Result<Void> block_pull(C &c, BlockPullArgs &a) {
    TRY(c.driver.domain_block_pull(c.client, a.dom, a.path, a.bandwidth, a.flags));
    return Void{};
}
Result<Void> block_commit(C &c, BlockCommitArgs &a) {
    TRY(c.driver.domain_block_commit(c.client, a.dom, a.disk, a.base, a.top, a.bandwidth, a.flags));
    return Void{};
}
Result<Void> block_job_abort(C &c, PathFlagsArgs &a) {
    TRY(c.driver.domain_block_job_abort(c.client, a.dom, a.path, a.flags));
    return Void{};
}
Result<GetBlockJobInfoRet> get_block_job_info(C &c, PathFlagsArgs &a) {
    BlockJobInfo i = TRY(c.driver.domain_get_block_job_info(c.client, a.dom, a.path, a.flags));
    return GetBlockJobInfoRet{i.found ? 1 : 0, i.type, i.bandwidth, i.cur, i.end};
}
Result<Void> block_job_set_speed(C &c, BlockJobSetSpeedArgs &a) {
    TRY(c.driver.domain_block_job_set_speed(c.client, a.dom, a.path, a.bandwidth, a.flags));
    return Void{};
}

constexpr Access R = Access::Read;
constexpr Access W = Access::Write;

constexpr Priority H = Priority::High;
constexpr Priority L = Priority::Low;

#define VS_PROC(num, api, access, prio, Args, Ret, fn) \
    ProcedureInfo { num, #num, api, access, prio, &handle<Args, Ret, fn> }

// Sorted by procedure number: find_procedure searches it (rpcsessiontest checks the order).
// Priorities are libvirt's `@priority: high` marks (remote_protocol.x); the rest are low.
const ProcedureInfo kTable[] = {
    VS_PROC(kProcConnectGetType, "virConnectGetType", R, H, Void, StringRet, get_type),
    VS_PROC(kProcConnectGetVersion, "virConnectGetVersion", R, H, Void, UHyperRet, get_version),
    VS_PROC(kProcNodeGetInfo, "virNodeGetInfo", R, H, Void, NodeGetInfoRet, node_get_info),
    VS_PROC(kProcConnectGetCapabilities, "virConnectGetCapabilities", R, L, Void, StringRet, get_capabilities),
    VS_PROC(kProcDomainCreate, "virDomainCreate", W, L, DomArgs, Void, create),
    VS_PROC(kProcDomainDefineXml, "virDomainDefineXML", W, H, DefineXmlArgs, DomRet, define_xml),
    VS_PROC(kProcDomainDestroy, "virDomainDestroy", W, H, DomArgs, Void, destroy),
    VS_PROC(kProcDomainGetXmlDesc, "virDomainGetXMLDesc", R, L, DomFlagsArgs, StringRet, get_xml_desc),
    VS_PROC(kProcDomainGetAutostart, "virDomainGetAutostart", R, H, DomArgs, IntRet, get_autostart),
    VS_PROC(kProcDomainGetInfo, "virDomainGetInfo", R, L, DomArgs, DomainGetInfoRet, get_info),
    VS_PROC(kProcDomainGetOsType, "virDomainGetOSType", R, H, DomArgs, StringRet, get_os_type),
    VS_PROC(kProcDomainLookupById, "virDomainLookupByID", R, H, LookupByIdArgs, DomRet, lookup_by_id),
    VS_PROC(kProcDomainLookupByName, "virDomainLookupByName", R, H, LookupByNameArgs, DomRet, lookup_by_name),
    VS_PROC(kProcDomainLookupByUuid, "virDomainLookupByUUID", R, H, LookupByUuidArgs, DomRet, lookup_by_uuid),
    VS_PROC(kProcDomainReboot, "virDomainReboot", W, L, DomFlagsArgs, Void, reboot),
    VS_PROC(kProcDomainResume, "virDomainResume", W, L, DomArgs, Void, resume),
    VS_PROC(kProcDomainSetAutostart, "virDomainSetAutostart", W, H, SetAutostartArgs, Void, set_autostart),
    VS_PROC(kProcDomainShutdown, "virDomainShutdown", W, L, DomArgs, Void, shutdown),
    VS_PROC(kProcDomainSuspend, "virDomainSuspend", W, L, DomArgs, Void, suspend),
    VS_PROC(kProcDomainUndefine, "virDomainUndefine", W, H, DomArgs, Void, undefine),
    VS_PROC(kProcConnectNumOfNetworks, "virConnectNumOfNetworks", R, H, Void, IntRet, num_of_networks),
    VS_PROC(kProcDomainRestore, "virDomainRestore", W, L, DomainRestoreArgs, Void, restore),
    VS_PROC(kProcDomainSave, "virDomainSave", W, L, DomainSaveArgs, Void, save),
    VS_PROC(kProcConnectGetHostname, "virConnectGetHostname", R, H, Void, StringRet, get_hostname),
    VS_PROC(kProcConnectGetUri, "virConnectGetURI", R, H, Void, StringRet, get_uri),
    VS_PROC(kProcNodeNumOfDevices, "virNodeNumOfDevices", R, H, NodeNumOfDevicesArgs, IntRet, node_num_of_devices),
    VS_PROC(kProcNodeListDevices, "virNodeListDevices", R, H, NodeListDevicesArgs, NamesRet, node_list_devices),
    VS_PROC(kProcDomainGetSecurityLabel, "virDomainGetSecurityLabel", R, H, DomArgs, DomainGetSecurityLabelRet,
            get_security_label),
    VS_PROC(kProcNodeGetSecurityModel, "virNodeGetSecurityModel", R, H, Void, NodeGetSecurityModelRet,
            node_get_security_model),
    VS_PROC(kProcDomainIsActive, "virDomainIsActive", R, H, DomArgs, IntRet, is_active),
    VS_PROC(kProcDomainIsPersistent, "virDomainIsPersistent", R, H, DomArgs, IntRet, is_persistent),
    VS_PROC(kProcConnectGetLibVersion, "virConnectGetLibVersion", R, H, Void, UHyperRet, get_lib_version),
    VS_PROC(kProcDomainGetJobInfo, "virDomainGetJobInfo", R, L, DomArgs, DomainGetJobInfoRet, get_job_info),
    VS_PROC(kProcDomainAbortJob, "virDomainAbortJob", W, L, DomArgs, Void, abort_job),
    VS_PROC(kProcDomainManagedSave, "virDomainManagedSave", W, L, DomFlagsArgs, Void, managed_save),
    VS_PROC(kProcDomainHasManagedSaveImage, "virDomainHasManagedSaveImage", R, L, DomFlagsArgs, IntRet,
            has_managed_save_image),
    VS_PROC(kProcDomainManagedSaveRemove, "virDomainManagedSaveRemove", W, L, DomFlagsArgs, Void,
            managed_save_remove),
    VS_PROC(kProcDomainSnapshotCreateXml, "virDomainSnapshotCreateXML", W, L, SnapshotCreateXmlArgs, SnapRet,
            snapshot_create_xml),
    VS_PROC(kProcDomainSnapshotGetXmlDesc, "virDomainSnapshotGetXMLDesc", R, H, SnapFlagsArgs, StringRet,
            snapshot_get_xml_desc),
    VS_PROC(kProcDomainSnapshotNum, "virDomainSnapshotNum", R, H, DomFlagsArgs, IntRet, snapshot_num),
    VS_PROC(kProcDomainSnapshotListNames, "virDomainSnapshotListNames", R, H, SnapshotListNamesArgs,
            SnapshotNamesRet, snapshot_list_names),
    VS_PROC(kProcDomainSnapshotLookupByName, "virDomainSnapshotLookupByName", R, H, SnapshotLookupByNameArgs,
            SnapRet, snapshot_lookup_by_name),
    VS_PROC(kProcDomainHasCurrentSnapshot, "virDomainHasCurrentSnapshot", R, L, DomFlagsArgs, IntRet,
            has_current_snapshot),
    VS_PROC(kProcDomainSnapshotCurrent, "virDomainSnapshotCurrent", R, L, DomFlagsArgs, SnapRet, snapshot_current),
    VS_PROC(kProcDomainRevertToSnapshot, "virDomainRevertToSnapshot", W, L, SnapFlagsArgs, Void,
            revert_to_snapshot),
    VS_PROC(kProcDomainSnapshotDelete, "virDomainSnapshotDelete", W, L, SnapFlagsArgs, Void, snapshot_delete),
    VS_PROC(kProcDomainGetBlockInfo, "virDomainGetBlockInfo", R, L, PathFlagsArgs, DomainGetBlockInfoRet,
            get_block_info),
    VS_PROC(kProcDomainCreateWithFlags, "virDomainCreateWithFlags", W, L, DomFlagsArgs, DomRet, create_with_flags),
    VS_PROC(kProcDomainGetState, "virDomainGetState", R, H, DomFlagsArgs, DomainGetStateRet, get_state),
    VS_PROC(kProcDomainUndefineFlags, "virDomainUndefineFlags", W, H, DomFlagsArgs, Void, undefine_flags),
    VS_PROC(kProcDomainSaveFlags, "virDomainSaveFlags", W, L, DomainSaveFlagsArgs, Void, save_flags),
    VS_PROC(kProcDomainRestoreFlags, "virDomainRestoreFlags", W, L, DomainRestoreFlagsArgs, Void, restore_flags),
    VS_PROC(kProcDomainDestroyFlags, "virDomainDestroyFlags", W, H, DomFlagsArgs, Void, destroy_flags),
    VS_PROC(kProcDomainBlockJobAbort, "virDomainBlockJobAbort", W, L, PathFlagsArgs, Void, block_job_abort),
    VS_PROC(kProcDomainGetBlockJobInfo, "virDomainGetBlockJobInfo", R, L, PathFlagsArgs, GetBlockJobInfoRet,
            get_block_job_info),
    VS_PROC(kProcDomainBlockJobSetSpeed, "virDomainBlockJobSetSpeed", W, L, BlockJobSetSpeedArgs, Void,
            block_job_set_speed),
    VS_PROC(kProcDomainBlockPull, "virDomainBlockPull", W, L, BlockPullArgs, Void, block_pull),
    VS_PROC(kProcDomainSnapshotGetParent, "virDomainSnapshotGetParent", R, H, SnapFlagsArgs, SnapRet,
            snapshot_get_parent),
    VS_PROC(kProcDomainSnapshotNumChildren, "virDomainSnapshotNumChildren", R, H, SnapFlagsArgs, IntRet,
            snapshot_num_children),
    VS_PROC(kProcDomainSnapshotListChildrenNames, "virDomainSnapshotListChildrenNames", R, H,
            SnapshotListChildrenNamesArgs, SnapshotNamesRet, snapshot_list_children_names),
    VS_PROC(kProcDomainShutdownFlags, "virDomainShutdownFlags", W, L, DomFlagsArgs, Void, shutdown_flags),
    VS_PROC(kProcDomainBlockRebase, "virDomainBlockRebase", W, L, BlockRebaseArgs, Void, block_rebase),
    VS_PROC(kProcDomainSnapshotIsCurrent, "virDomainSnapshotIsCurrent", R, L, SnapFlagsArgs, IntRet,
            snapshot_is_current),
    VS_PROC(kProcDomainSnapshotHasMetadata, "virDomainSnapshotHasMetadata", R, L, SnapFlagsArgs, IntRet,
            snapshot_has_metadata),
    VS_PROC(kProcConnectListAllDomains, "virConnectListAllDomains", R, H, NeedResultsArgs, ListAllDomainsRet,
            list_all_domains),
    VS_PROC(kProcDomainListAllSnapshots, "virDomainListAllSnapshots", R, H, ListAllSnapshotsArgs, SnapshotListRet,
            list_all_snapshots),
    VS_PROC(kProcDomainSnapshotListAllChildren, "virDomainSnapshotListAllChildren", R, H,
            SnapshotListAllChildrenArgs, SnapshotListRet, snapshot_list_all_children),
    VS_PROC(kProcConnectListAllStoragePools, "virConnectListAllStoragePools", R, H, NeedResultsArgs, EmptyListRet,
            list_all_empty),
    VS_PROC(kProcConnectListAllNetworks, "virConnectListAllNetworks", R, H, NeedResultsArgs, EmptyListRet,
            list_all_empty),
    VS_PROC(kProcConnectListAllNodeDevices, "virConnectListAllNodeDevices", R, H, NeedResultsArgs, EmptyListRet,
            list_all_empty),
    VS_PROC(kProcDomainBlockCommit, "virDomainBlockCommit", W, L, BlockCommitArgs, Void, block_commit),
    VS_PROC(kProcDomainGetJobStats, "virDomainGetJobStats", R, L, DomFlagsArgs, DomainGetJobStatsRet, get_job_stats),
    VS_PROC(kProcDomainBlockCopy, "virDomainBlockCopy", W, L, BlockCopyArgs, Void, block_copy),
    VS_PROC(kProcDomainDefineXmlFlags, "virDomainDefineXMLFlags", W, H, DefineXmlFlagsArgs, DomRet, define_xml_flags),
    VS_PROC(kProcDomainCheckpointCreateXml, "virDomainCheckpointCreateXML", W, L, CheckpointCreateXmlArgs,
            CheckpointRet, checkpoint_create_xml),
    VS_PROC(kProcDomainCheckpointGetXmlDesc, "virDomainCheckpointGetXMLDesc", R, L, CheckpointFlagsArgs, StringRet,
            checkpoint_get_xml_desc),
    VS_PROC(kProcDomainListAllCheckpoints, "virDomainListAllCheckpoints", R, L, ListAllCheckpointsArgs,
            CheckpointListRet, list_all_checkpoints),
    VS_PROC(kProcDomainCheckpointListAllChildren, "virDomainCheckpointListAllChildren", R, L,
            CheckpointListAllChildrenArgs, CheckpointListRet, checkpoint_list_all_children),
    VS_PROC(kProcDomainCheckpointLookupByName, "virDomainCheckpointLookupByName", R, L, CheckpointLookupByNameArgs,
            CheckpointRet, checkpoint_lookup_by_name),
    VS_PROC(kProcDomainCheckpointGetParent, "virDomainCheckpointGetParent", R, L, CheckpointFlagsArgs,
            CheckpointRet, checkpoint_get_parent),
    VS_PROC(kProcDomainCheckpointDelete, "virDomainCheckpointDelete", W, L, CheckpointFlagsArgs, Void,
            checkpoint_delete),
    VS_PROC(kProcDomainBackupBegin, "virDomainBackupBegin", W, L, BackupBeginArgs, Void, backup_begin),
    VS_PROC(kProcDomainBackupGetXmlDesc, "virDomainBackupGetXMLDesc", R, L, DomFlagsArgs, StringRet,
            backup_get_xml_desc),
    VS_PROC(kProcDomainGetMessages, "virDomainGetMessages", R, L, DomFlagsArgs, DomainGetMessagesRet, get_messages),
    VS_PROC(kProcDomainAbortJobFlags, "virDomainAbortJobFlags", W, L, DomFlagsArgs, Void, abort_job_flags),
};

#undef VS_PROC

}  // namespace

std::span<const ProcedureInfo> procedures() { return kTable; }

const ProcedureInfo *find_procedure(int32_t proc) {
    auto it = std::lower_bound(std::begin(kTable), std::end(kTable), proc,
                               [](const ProcedureInfo &p, int32_t n) { return p.proc < n; });
    if (it == std::end(kTable) || it->proc != proc) return nullptr;
    return &*it;
}

}  // namespace virtsnap::rpc
