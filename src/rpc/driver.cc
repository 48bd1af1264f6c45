// driver.cc - default Driver methods: each reports the libvirt API as unsupported.

#include "rpc/driver.hh"

namespace virtsnap::rpc {

Error unsupported_error(const char *api, virErrorDomain domain) {
    return make_error(VIR_ERR_NO_SUPPORT, domain, api);
}

namespace {
Unexpected nosup(const char *api, virErrorDomain domain = VIR_FROM_DOMAIN) {
    return Unexpected{unsupported_error(api, domain)};
}
constexpr virErrorDomain kConn = VIR_FROM_NONE;
constexpr virErrorDomain kSnap = VIR_FROM_DOMAIN_SNAPSHOT;
constexpr virErrorDomain kCkpt = VIR_FROM_DOMAIN_CHECKPOINT;
}  // namespace

// A driver that serves nothing else still lets clients connect.
Status Driver::connect_open(const Client &, const std::optional<std::string> &, uint32_t) { return ok(); }
void Driver::connect_close(const Client &) {}
Result<std::string> Driver::connect_get_type(const Client &) { return nosup("virConnectGetType", kConn); }
Result<uint64_t> Driver::connect_get_version(const Client &) { return nosup("virConnectGetVersion", kConn); }
Result<uint64_t> Driver::connect_get_lib_version(const Client &) { return nosup("virConnectGetLibVersion", kConn); }
Result<std::string> Driver::connect_get_hostname(const Client &) { return nosup("virConnectGetHostname", kConn); }
Result<std::string> Driver::connect_get_uri(const Client &) { return nosup("virConnectGetURI", kConn); }
Result<std::string> Driver::connect_get_capabilities(const Client &) {
    return nosup("virConnectGetCapabilities", kConn);
}
Result<NodeInfo> Driver::node_get_info(const Client &) { return nosup("virNodeGetInfo", kConn); }
Result<SecurityModel> Driver::node_get_security_model(const Client &) {
    return nosup("virNodeGetSecurityModel", kConn);
}

Result<std::vector<DomainRef>> Driver::connect_list_all_domains(const Client &, uint32_t) {
    return nosup("virConnectListAllDomains", kConn);
}
Result<DomainRef> Driver::domain_lookup_by_name(const Client &, const std::string &) {
    return nosup("virDomainLookupByName");
}
Result<DomainRef> Driver::domain_lookup_by_uuid(const Client &, const Uuid &) {
    return nosup("virDomainLookupByUUID");
}
Result<DomainRef> Driver::domain_lookup_by_id(const Client &, int32_t) { return nosup("virDomainLookupByID"); }
Result<DomainRef> Driver::domain_define_xml(const Client &, const std::string &, uint32_t) {
    return nosup("virDomainDefineXMLFlags");
}
Status Driver::domain_undefine(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainUndefineFlags");
}
Result<DomainRef> Driver::domain_create(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainCreateWithFlags");
}
Status Driver::domain_destroy(const Client &, const DomainRef &, uint32_t) { return nosup("virDomainDestroyFlags"); }
Status Driver::domain_shutdown(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainShutdownFlags");
}
Status Driver::domain_reboot(const Client &, const DomainRef &, uint32_t) { return nosup("virDomainReboot"); }
Status Driver::domain_suspend(const Client &, const DomainRef &) { return nosup("virDomainSuspend"); }
Status Driver::domain_resume(const Client &, const DomainRef &) { return nosup("virDomainResume"); }
Result<std::string> Driver::domain_get_xml_desc(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainGetXMLDesc");
}
Result<DomainInfo> Driver::domain_get_info(const Client &, const DomainRef &) { return nosup("virDomainGetInfo"); }
Result<DomainState> Driver::domain_get_state(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainGetState");
}
Result<std::string> Driver::domain_get_os_type(const Client &, const DomainRef &) {
    return nosup("virDomainGetOSType");
}
Result<bool> Driver::domain_is_active(const Client &, const DomainRef &) { return nosup("virDomainIsActive"); }
Result<bool> Driver::domain_is_persistent(const Client &, const DomainRef &) {
    return nosup("virDomainIsPersistent");
}
Result<bool> Driver::domain_get_autostart(const Client &, const DomainRef &) {
    return nosup("virDomainGetAutostart");
}
Status Driver::domain_set_autostart(const Client &, const DomainRef &, bool) {
    return nosup("virDomainSetAutostart");
}
Result<BlockInfo> Driver::domain_get_block_info(const Client &, const DomainRef &, const std::string &, uint32_t) {
    return nosup("virDomainGetBlockInfo");
}
Status Driver::domain_save(const Client &, const DomainRef &, const std::string &,
                           const std::optional<std::string> &, uint32_t) {
    return nosup("virDomainSaveFlags");
}
Status Driver::domain_restore(const Client &, const std::string &, const std::optional<std::string> &, uint32_t) {
    return nosup("virDomainRestoreFlags");
}
Status Driver::domain_managed_save(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainManagedSave");
}
Status Driver::domain_managed_save_remove(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainManagedSaveRemove");
}
Result<bool> Driver::domain_has_managed_save_image(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainHasManagedSaveImage");
}
Result<SecurityLabel> Driver::domain_get_security_label(const Client &, const DomainRef &) {
    return nosup("virDomainGetSecurityLabel");
}
Result<std::vector<std::string>> Driver::domain_get_messages(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainGetMessages");
}

Result<JobInfo> Driver::domain_get_job_info(const Client &, const DomainRef &) {
    return nosup("virDomainGetJobInfo");
}
Result<JobStats> Driver::domain_get_job_stats(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainGetJobStats");
}
Status Driver::domain_abort_job(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainAbortJobFlags");
}

Result<SnapshotRef> Driver::domain_snapshot_create_xml(const Client &, const DomainRef &, const std::string &,
                                                       uint32_t) {
    return nosup("virDomainSnapshotCreateXML", kSnap);
}
Result<std::string> Driver::domain_snapshot_get_xml_desc(const Client &, const SnapshotRef &, uint32_t) {
    return nosup("virDomainSnapshotGetXMLDesc", kSnap);
}
Result<int32_t> Driver::domain_snapshot_num(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainSnapshotNum", kSnap);
}
Result<std::vector<std::string>> Driver::domain_snapshot_list_names(const Client &, const DomainRef &, int32_t,
                                                                    uint32_t) {
    return nosup("virDomainSnapshotListNames", kSnap);
}
Result<SnapshotRef> Driver::domain_snapshot_lookup_by_name(const Client &, const DomainRef &, const std::string &,
                                                           uint32_t) {
    return nosup("virDomainSnapshotLookupByName", kSnap);
}
Result<bool> Driver::domain_has_current_snapshot(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainHasCurrentSnapshot", kSnap);
}
Result<SnapshotRef> Driver::domain_snapshot_current(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainSnapshotCurrent", kSnap);
}
Status Driver::domain_revert_to_snapshot(const Client &, const SnapshotRef &, uint32_t) {
    return nosup("virDomainRevertToSnapshot", kSnap);
}
Status Driver::domain_snapshot_delete(const Client &, const SnapshotRef &, uint32_t) {
    return nosup("virDomainSnapshotDelete", kSnap);
}
Result<SnapshotRef> Driver::domain_snapshot_get_parent(const Client &, const SnapshotRef &, uint32_t) {
    return nosup("virDomainSnapshotGetParent", kSnap);
}
Result<int32_t> Driver::domain_snapshot_num_children(const Client &, const SnapshotRef &, uint32_t) {
    return nosup("virDomainSnapshotNumChildren", kSnap);
}
Result<std::vector<std::string>> Driver::domain_snapshot_list_children_names(const Client &, const SnapshotRef &,
                                                                             int32_t, uint32_t) {
    return nosup("virDomainSnapshotListChildrenNames", kSnap);
}
Result<bool> Driver::domain_snapshot_is_current(const Client &, const SnapshotRef &, uint32_t) {
    return nosup("virDomainSnapshotIsCurrent", kSnap);
}
Result<bool> Driver::domain_snapshot_has_metadata(const Client &, const SnapshotRef &, uint32_t) {
    return nosup("virDomainSnapshotHasMetadata", kSnap);
}
Result<std::vector<SnapshotRef>> Driver::domain_list_all_snapshots(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainListAllSnapshots", kSnap);
}
Result<std::vector<SnapshotRef>> Driver::domain_snapshot_list_all_children(const Client &, const SnapshotRef &,
                                                                           uint32_t) {
    return nosup("virDomainSnapshotListAllChildren", kSnap);
}

Result<CheckpointRef> Driver::domain_checkpoint_create_xml(const Client &, const DomainRef &, const std::string &,
                                                           uint32_t) {
    return nosup("virDomainCheckpointCreateXML", kCkpt);
}
Result<std::string> Driver::domain_checkpoint_get_xml_desc(const Client &, const CheckpointRef &, uint32_t) {
    return nosup("virDomainCheckpointGetXMLDesc", kCkpt);
}
Result<std::vector<CheckpointRef>> Driver::domain_list_all_checkpoints(const Client &, const DomainRef &,
                                                                       uint32_t) {
    return nosup("virDomainListAllCheckpoints", kCkpt);
}
Result<std::vector<CheckpointRef>> Driver::domain_checkpoint_list_all_children(const Client &,
                                                                               const CheckpointRef &, uint32_t) {
    return nosup("virDomainCheckpointListAllChildren", kCkpt);
}
Result<CheckpointRef> Driver::domain_checkpoint_lookup_by_name(const Client &, const DomainRef &,
                                                               const std::string &, uint32_t) {
    return nosup("virDomainCheckpointLookupByName", kCkpt);
}
Result<CheckpointRef> Driver::domain_checkpoint_get_parent(const Client &, const CheckpointRef &, uint32_t) {
    return nosup("virDomainCheckpointGetParent", kCkpt);
}
Status Driver::domain_checkpoint_delete(const Client &, const CheckpointRef &, uint32_t) {
    return nosup("virDomainCheckpointDelete", kCkpt);
}

Status Driver::domain_backup_begin(const Client &, const DomainRef &, const std::string &,
                                   const std::optional<std::string> &, uint32_t) {
    return nosup("virDomainBackupBegin");
}
Result<std::string> Driver::domain_backup_get_xml_desc(const Client &, const DomainRef &, uint32_t) {
    return nosup("virDomainBackupGetXMLDesc");
}

Status Driver::domain_block_copy(const Client &, const DomainRef &, const std::string &, const std::string &,
                                 const std::vector<TypedParam> &, uint32_t) {
    return nosup("virDomainBlockCopy");
}
Status Driver::domain_block_rebase(const Client &, const DomainRef &, const std::string &,
                                   const std::optional<std::string> &, uint64_t, uint32_t) {
    return nosup("virDomainBlockRebase");
}
Status Driver::domain_block_pull(const Client &, const DomainRef &, const std::string &, uint64_t, uint32_t) {
    return nosup("virDomainBlockPull");
}
Status Driver::domain_block_commit(const Client &, const DomainRef &, const std::string &,
                                   const std::optional<std::string> &, const std::optional<std::string> &,
                                   uint64_t, uint32_t) {
    return nosup("virDomainBlockCommit");
}
Status Driver::domain_block_job_abort(const Client &, const DomainRef &, const std::string &, uint32_t) {
    return nosup("virDomainBlockJobAbort");
}
Result<BlockJobInfo> Driver::domain_get_block_job_info(const Client &, const DomainRef &, const std::string &,
                                                       uint32_t) {
    return nosup("virDomainGetBlockJobInfo");
}
Status Driver::domain_block_job_set_speed(const Client &, const DomainRef &, const std::string &, uint64_t,
                                          uint32_t) {
    return nosup("virDomainBlockJobSetSpeed");
}

}  // namespace virtsnap::rpc
