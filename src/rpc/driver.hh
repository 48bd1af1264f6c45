// driver.hh - the hypervisor interface the RPC server calls, and the event sink
// a hypervisor publishes to. rpc knows nothing of QEMU: the daemon implements
// Driver on top of src/qemu and gives it to rpc::Server.
//
// One virtual per libvirt API, in libvirt's argument order, returning Result<T>.
// Every default answers VIR_ERR_NO_SUPPORT with libvirt's wording ("this function
// is not supported by the connection driver: virDomainXxx"), so a driver only
// overrides what it serves. Calls run on the server's worker threads, several at
// once: implementations must be thread-safe. Flags are passed through unchecked;
// validating them (virCheckFlags) is the driver's job.
#pragma once

#include "rpc/driver_types.hh"

#include "util/result.hh"

#include <optional>
#include <string>
#include <vector>

namespace virtsnap::rpc {

class Driver {
public:
    virtual ~Driver() = default;

    // ---- Connection ----
    // name is the URI the client sent ("qemu:///system"), flags VIR_CONNECT_*;
    // the server has already added VIR_CONNECT_RO for read-only clients.
    virtual Status connect_open(const Client &c, const std::optional<std::string> &name, uint32_t flags);
    virtual void connect_close(const Client &c);
    virtual Result<std::string> connect_get_type(const Client &c);
    virtual Result<uint64_t> connect_get_version(const Client &c);
    virtual Result<uint64_t> connect_get_lib_version(const Client &c);
    virtual Result<std::string> connect_get_hostname(const Client &c);
    virtual Result<std::string> connect_get_uri(const Client &c);
    virtual Result<std::string> connect_get_capabilities(const Client &c);
    virtual Result<NodeInfo> node_get_info(const Client &c);
    virtual Result<SecurityModel> node_get_security_model(const Client &c);

    // ---- Domains ----
    virtual Result<std::vector<DomainRef>> connect_list_all_domains(const Client &c, uint32_t flags);
    virtual Result<DomainRef> domain_lookup_by_name(const Client &c, const std::string &name);
    virtual Result<DomainRef> domain_lookup_by_uuid(const Client &c, const Uuid &uuid);
    virtual Result<DomainRef> domain_lookup_by_id(const Client &c, int32_t id);
    virtual Result<DomainRef> domain_define_xml(const Client &c, const std::string &xml, uint32_t flags);
    virtual Status domain_undefine(const Client &c, const DomainRef &dom, uint32_t flags);
    // Starts the domain; returns it with its new id.
    virtual Result<DomainRef> domain_create(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Status domain_destroy(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Status domain_shutdown(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Status domain_reboot(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Status domain_suspend(const Client &c, const DomainRef &dom);
    virtual Status domain_resume(const Client &c, const DomainRef &dom);
    virtual Result<std::string> domain_get_xml_desc(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Result<DomainInfo> domain_get_info(const Client &c, const DomainRef &dom);
    virtual Result<DomainState> domain_get_state(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Result<std::string> domain_get_os_type(const Client &c, const DomainRef &dom);
    virtual Result<bool> domain_is_active(const Client &c, const DomainRef &dom);
    virtual Result<bool> domain_is_persistent(const Client &c, const DomainRef &dom);
    virtual Result<bool> domain_get_autostart(const Client &c, const DomainRef &dom);
    virtual Status domain_set_autostart(const Client &c, const DomainRef &dom, bool autostart);
    virtual Result<BlockInfo> domain_get_block_info(const Client &c, const DomainRef &dom,
                                                    const std::string &path, uint32_t flags);
    virtual Status domain_save(const Client &c, const DomainRef &dom, const std::string &to,
                               const std::optional<std::string> &dxml, uint32_t flags);
    virtual Status domain_restore(const Client &c, const std::string &from,
                                  const std::optional<std::string> &dxml, uint32_t flags);
    virtual Status domain_managed_save(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Status domain_managed_save_remove(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Result<bool> domain_has_managed_save_image(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Result<SecurityLabel> domain_get_security_label(const Client &c, const DomainRef &dom);
    virtual Result<std::vector<std::string>> domain_get_messages(const Client &c, const DomainRef &dom,
                                                                 uint32_t flags);

    // ---- Jobs ----
    virtual Result<JobInfo> domain_get_job_info(const Client &c, const DomainRef &dom);
    virtual Result<JobStats> domain_get_job_stats(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Status domain_abort_job(const Client &c, const DomainRef &dom, uint32_t flags);

    // ---- Snapshots ----
    virtual Result<SnapshotRef> domain_snapshot_create_xml(const Client &c, const DomainRef &dom,
                                                           const std::string &xml, uint32_t flags);
    virtual Result<std::string> domain_snapshot_get_xml_desc(const Client &c, const SnapshotRef &snap,
                                                             uint32_t flags);
    virtual Result<int32_t> domain_snapshot_num(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Result<std::vector<std::string>> domain_snapshot_list_names(const Client &c, const DomainRef &dom,
                                                                        int32_t maxnames, uint32_t flags);
    virtual Result<SnapshotRef> domain_snapshot_lookup_by_name(const Client &c, const DomainRef &dom,
                                                               const std::string &name, uint32_t flags);
    virtual Result<bool> domain_has_current_snapshot(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Result<SnapshotRef> domain_snapshot_current(const Client &c, const DomainRef &dom, uint32_t flags);
    virtual Status domain_revert_to_snapshot(const Client &c, const SnapshotRef &snap, uint32_t flags);
    virtual Status domain_snapshot_delete(const Client &c, const SnapshotRef &snap, uint32_t flags);
    virtual Result<SnapshotRef> domain_snapshot_get_parent(const Client &c, const SnapshotRef &snap,
                                                           uint32_t flags);
    virtual Result<int32_t> domain_snapshot_num_children(const Client &c, const SnapshotRef &snap,
                                                         uint32_t flags);
    virtual Result<std::vector<std::string>> domain_snapshot_list_children_names(
        const Client &c, const SnapshotRef &snap, int32_t maxnames, uint32_t flags);
    virtual Result<bool> domain_snapshot_is_current(const Client &c, const SnapshotRef &snap, uint32_t flags);
    virtual Result<bool> domain_snapshot_has_metadata(const Client &c, const SnapshotRef &snap, uint32_t flags);
    virtual Result<std::vector<SnapshotRef>> domain_list_all_snapshots(const Client &c, const DomainRef &dom,
                                                                       uint32_t flags);
    virtual Result<std::vector<SnapshotRef>> domain_snapshot_list_all_children(const Client &c,
                                                                               const SnapshotRef &snap,
                                                                               uint32_t flags);

    // ---- Checkpoints ----
    virtual Result<CheckpointRef> domain_checkpoint_create_xml(const Client &c, const DomainRef &dom,
                                                               const std::string &xml, uint32_t flags);
    virtual Result<std::string> domain_checkpoint_get_xml_desc(const Client &c, const CheckpointRef &cp,
                                                               uint32_t flags);
    virtual Result<std::vector<CheckpointRef>> domain_list_all_checkpoints(const Client &c, const DomainRef &dom,
                                                                           uint32_t flags);
    virtual Result<std::vector<CheckpointRef>> domain_checkpoint_list_all_children(const Client &c,
                                                                                   const CheckpointRef &cp,
                                                                                   uint32_t flags);
    virtual Result<CheckpointRef> domain_checkpoint_lookup_by_name(const Client &c, const DomainRef &dom,
                                                                   const std::string &name, uint32_t flags);
    virtual Result<CheckpointRef> domain_checkpoint_get_parent(const Client &c, const CheckpointRef &cp,
                                                               uint32_t flags);
    virtual Status domain_checkpoint_delete(const Client &c, const CheckpointRef &cp, uint32_t flags);

    // ---- Backup ----
    virtual Status domain_backup_begin(const Client &c, const DomainRef &dom, const std::string &backup_xml,
                                       const std::optional<std::string> &checkpoint_xml, uint32_t flags);
    virtual Result<std::string> domain_backup_get_xml_desc(const Client &c, const DomainRef &dom,
                                                           uint32_t flags);

    // ---- Block jobs ----
    virtual Status domain_block_copy(const Client &c, const DomainRef &dom, const std::string &disk,
                                     const std::string &destxml, const std::vector<TypedParam> &params,
                                     uint32_t flags);
    virtual Status domain_block_rebase(const Client &c, const DomainRef &dom, const std::string &disk,
                                       const std::optional<std::string> &base, uint64_t bandwidth,
                                       uint32_t flags);
    virtual Status domain_block_pull(const Client &c, const DomainRef &dom, const std::string &disk,
                                     uint64_t bandwidth, uint32_t flags);
    virtual Status domain_block_commit(const Client &c, const DomainRef &dom, const std::string &disk,
                                       const std::optional<std::string> &base,
                                       const std::optional<std::string> &top, uint64_t bandwidth,
                                       uint32_t flags);
    virtual Status domain_block_job_abort(const Client &c, const DomainRef &dom, const std::string &disk,
                                          uint32_t flags);
    virtual Result<BlockJobInfo> domain_get_block_job_info(const Client &c, const DomainRef &dom,
                                                           const std::string &disk, uint32_t flags);
    virtual Status domain_block_job_set_speed(const Client &c, const DomainRef &dom, const std::string &disk,
                                              uint64_t bandwidth, uint32_t flags);
};

// The error a default Driver method returns: libvirt's virReportUnsupportedError.
Error unsupported_error(const char *api, virErrorDomain domain);

// Where the daemon publishes domain events; the server fans each out to the
// clients whose registrations match (event id and optional domain filter).
// Callable from any thread; never blocks on clients.
class EventSink {
public:
    virtual ~EventSink() = default;
    // VIR_DOMAIN_EVENT_ID_LIFECYCLE: event is virDomainEventType, detail its reason.
    virtual void domain_lifecycle(const DomainRef &dom, int32_t event, int32_t detail) = 0;
    // VIR_DOMAIN_EVENT_ID_BLOCK_JOB (names the disk by source path) and
    // VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2 (names it by target, e.g. "vda") at once.
    virtual void domain_block_job(const DomainRef &dom, const std::string &source_path,
                                  const std::string &target, int32_t type, int32_t status) = 0;
    // VIR_DOMAIN_EVENT_ID_JOB_COMPLETED: the statistics of the finished job.
    virtual void domain_job_completed(const DomainRef &dom, const std::vector<TypedParam> &stats) = 0;
};

}  // namespace virtsnap::rpc
