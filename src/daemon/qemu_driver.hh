// qemu_driver.hh - virtsnapd's implementation of rpc::Driver on top of
// src/conf (definitions, stores) and src/qemu (domains, QEMU processes).
//
// The rpc layer calls these methods on its worker threads. Each API validates
// its flags first (libvirt's virCheckFlags wording), finds the domain by UUID
// and reports libvirt's errors. State-changing APIs take the domain's job;
// queries only take the short domain mutex.
#pragma once

#include "conf/domain_config_store.hh"
#include "conf/snapshot_list.hh"
#include "conf/state_layout.hh"
#include "daemon/block_job_events.hh"
#include "daemon/daemon_config.hh"
#include "qemu/domain_process.hh"
#include "qemu/domain_registry.hh"
#include "rpc/driver.hh"

#include <memory>
#include <string>

namespace virtsnap::qemu_snapshot {
struct ExternalDiskDelete;
}

namespace virtsnap::daemon {

// Whether a raw memory image of a guest with `ram_bytes` of RAM goes through
// virtsnap-relay with O_DIRECT, under virtsnapd.conf's memory_image_direct_io
// `setting` ("auto": above the page cache's writeback threshold).
inline bool choose_memory_direct_io(const std::string &setting, uint64_t ram_bytes, bool bypass_cache) {
    if (bypass_cache || setting == "always") return true;
    if (setting == "never") return false;
    auto threshold = qemu::page_cache_writeback_threshold();
    return threshold && ram_bytes > *threshold;
}

class QemuDriver : public rpc::Driver {
public:
    QemuDriver(StateLayout layout, DaemonConfig config);
    ~QemuDriver() override;

    // Loads domain configs (and re-attaches running QEMUs) at start-up.
    [[nodiscard]] Status load();
    // Where events go (the rpc server); set before serving.
    void set_event_sink(rpc::EventSink *sink) { events_ = sink; }
    // Detaches from every running QEMU without stopping it (daemon shutdown).
    void detach_all();

    // ---- rpc::Driver ----
    Status connect_open(const rpc::Client &c, const std::optional<std::string> &name, uint32_t flags) override;
    void connect_close(const rpc::Client &c) override;
    Result<std::string> connect_get_type(const rpc::Client &c) override;
    Result<uint64_t> connect_get_version(const rpc::Client &c) override;
    Result<uint64_t> connect_get_lib_version(const rpc::Client &c) override;
    Result<std::string> connect_get_hostname(const rpc::Client &c) override;
    Result<std::string> connect_get_uri(const rpc::Client &c) override;
    Result<std::string> connect_get_capabilities(const rpc::Client &c) override;
    Result<rpc::NodeInfo> node_get_info(const rpc::Client &c) override;
    Result<rpc::SecurityModel> node_get_security_model(const rpc::Client &c) override;

    Result<std::vector<rpc::DomainRef>> connect_list_all_domains(const rpc::Client &c, uint32_t flags) override;
    Result<rpc::DomainRef> domain_lookup_by_name(const rpc::Client &c, const std::string &name) override;
    Result<rpc::DomainRef> domain_lookup_by_uuid(const rpc::Client &c, const Uuid &uuid) override;
    Result<rpc::DomainRef> domain_lookup_by_id(const rpc::Client &c, int32_t id) override;
    Result<rpc::DomainRef> domain_define_xml(const rpc::Client &c, const std::string &xml, uint32_t flags) override;
    Status domain_undefine(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Result<std::string> domain_get_xml_desc(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Result<rpc::DomainInfo> domain_get_info(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Result<rpc::DomainState> domain_get_state(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Result<std::string> domain_get_os_type(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Result<bool> domain_is_active(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Result<bool> domain_is_persistent(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Result<bool> domain_get_autostart(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Status domain_set_autostart(const rpc::Client &c, const rpc::DomainRef &dom, bool autostart) override;
    Result<bool> domain_has_managed_save_image(const rpc::Client &c, const rpc::DomainRef &dom,
                                               uint32_t flags) override;
    Result<rpc::BlockInfo> domain_get_block_info(const rpc::Client &c, const rpc::DomainRef &dom,
                                                 const std::string &path, uint32_t flags) override;
    Result<rpc::SecurityLabel> domain_get_security_label(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Result<std::vector<std::string>> domain_get_messages(const rpc::Client &c, const rpc::DomainRef &dom,
                                                         uint32_t flags) override;
    Result<int32_t> domain_snapshot_num(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;

    Result<rpc::DomainRef> domain_create(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Status domain_destroy(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Status domain_shutdown(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Status domain_reboot(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Status domain_suspend(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Status domain_resume(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Result<rpc::JobInfo> domain_get_job_info(const rpc::Client &c, const rpc::DomainRef &dom) override;
    Result<rpc::JobStats> domain_get_job_stats(const rpc::Client &c, const rpc::DomainRef &dom,
                                               uint32_t flags) override;
    Status domain_abort_job(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;

    // ---- Save / restore (qemu_driver_save.cc) ----
    Status domain_save(const rpc::Client &c, const rpc::DomainRef &dom, const std::string &to,
                       const std::optional<std::string> &dxml, uint32_t flags) override;
    Status domain_restore(const rpc::Client &c, const std::string &from, const std::optional<std::string> &dxml,
                          uint32_t flags) override;
    Status domain_managed_save(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;
    Status domain_managed_save_remove(const rpc::Client &c, const rpc::DomainRef &dom, uint32_t flags) override;

    // ---- Snapshot creation (qemu_driver_snapshot_create.cc) ----
    Result<rpc::SnapshotRef> domain_snapshot_create_xml(const rpc::Client &c, const rpc::DomainRef &dom,
                                                        const std::string &xml, uint32_t flags) override;

    // ---- Snapshot queries (qemu_driver_snapshot_query.cc) ----
    Result<std::string> domain_snapshot_get_xml_desc(const rpc::Client &c, const rpc::SnapshotRef &snap,
                                                     uint32_t flags) override;
    Result<std::vector<std::string>> domain_snapshot_list_names(const rpc::Client &c, const rpc::DomainRef &dom,
                                                                int32_t maxnames, uint32_t flags) override;
    Result<rpc::SnapshotRef> domain_snapshot_lookup_by_name(const rpc::Client &c, const rpc::DomainRef &dom,
                                                            const std::string &name, uint32_t flags) override;
    Result<bool> domain_has_current_snapshot(const rpc::Client &c, const rpc::DomainRef &dom,
                                             uint32_t flags) override;
    Result<rpc::SnapshotRef> domain_snapshot_current(const rpc::Client &c, const rpc::DomainRef &dom,
                                                     uint32_t flags) override;
    Result<rpc::SnapshotRef> domain_snapshot_get_parent(const rpc::Client &c, const rpc::SnapshotRef &snap,
                                                        uint32_t flags) override;
    Result<int32_t> domain_snapshot_num_children(const rpc::Client &c, const rpc::SnapshotRef &snap,
                                                 uint32_t flags) override;
    Result<std::vector<std::string>> domain_snapshot_list_children_names(const rpc::Client &c,
                                                                         const rpc::SnapshotRef &snap,
                                                                         int32_t maxnames, uint32_t flags) override;
    Result<bool> domain_snapshot_is_current(const rpc::Client &c, const rpc::SnapshotRef &snap,
                                            uint32_t flags) override;
    Result<bool> domain_snapshot_has_metadata(const rpc::Client &c, const rpc::SnapshotRef &snap,
                                              uint32_t flags) override;
    Result<std::vector<rpc::SnapshotRef>> domain_list_all_snapshots(const rpc::Client &c, const rpc::DomainRef &dom,
                                                                    uint32_t flags) override;
    Result<std::vector<rpc::SnapshotRef>> domain_snapshot_list_all_children(const rpc::Client &c,
                                                                            const rpc::SnapshotRef &snap,
                                                                            uint32_t flags) override;

    // ---- Snapshot revert and delete (qemu_driver_snapshot_revert.cc, qemu_driver_snapshot_delete.cc) ----
    Status domain_revert_to_snapshot(const rpc::Client &c, const rpc::SnapshotRef &snap, uint32_t flags) override;
    Status domain_snapshot_delete(const rpc::Client &c, const rpc::SnapshotRef &snap, uint32_t flags) override;

private:
    // Start from a managed save image when one exists (qemu_driver_save.cc);
    // returns false when there is none and a normal boot is needed.
    [[nodiscard]] Result<bool> start_from_managed_save(const std::shared_ptr<qemu::DomainObj> &dom, uint32_t flags);

    [[nodiscard]] Result<std::shared_ptr<qemu::DomainObj>> find(const rpc::DomainRef &ref) const;
    // The domain's snapshot collection, loaded from disk on first use.
    [[nodiscard]] Result<std::shared_ptr<conf::SnapshotList>> snapshots_of(const std::shared_ptr<qemu::DomainObj> &dom);
    // Finds the domain of `snap` and its snapshot collection.
    [[nodiscard]] Result<std::pair<std::shared_ptr<qemu::DomainObj>, std::shared_ptr<conf::SnapshotList>>>
    snapshot_domain(const rpc::DomainRef &ref);
    rpc::DomainRef ref_of(const qemu::DomainObj &dom) const;  // caller holds dom.mu
    void emit_lifecycle(const std::shared_ptr<qemu::DomainObj> &dom, int event, int detail);
    // Publishes libvirt's BLOCK_JOB / BLOCK_JOB_2 events of the online commit of
    // `disk` (snapshot delete) while the returned relay lives; create it before the job.
    [[nodiscard]] std::unique_ptr<BlockJobEventRelay> relay_commit_events(
        const std::shared_ptr<qemu::DomainObj> &dom, qemu::DomainProcess &process,
        const qemu_snapshot::ExternalDiskDelete &disk);
    [[nodiscard]] Status save_config(const conf::DomainDef &def);
    size_t snapshot_count(const std::shared_ptr<qemu::DomainObj> &dom);

    // Process control (qemu_driver_process.cc).
    [[nodiscard]] Status start_domain(const std::shared_ptr<qemu::DomainObj> &dom, uint32_t flags);
    qemu::DomainProcess::EventHandler process_handler(const std::shared_ptr<qemu::DomainObj> &dom);
    void schedule_cleanup(const std::shared_ptr<qemu::DomainObj> &dom);
    void release_stopped_process(const std::shared_ptr<qemu::DomainObj> &dom);
    template <typename Op>
    [[nodiscard]] Status with_process(const rpc::DomainRef &ref, const char *api, Op &&op);
    [[nodiscard]] Status reattach_all();
    [[nodiscard]] Status recover_jobs();  // [recovery] qemu_driver_recovery.cc
    // QEMU started by a revert (or its recovery): `def` paused, or loading a memory image. [recovery]
    [[nodiscard]] Status start_from_snapshot(const std::shared_ptr<qemu::DomainObj> &dom, const conf::DomainDef &def,
                                             bool paused, const std::string &memory_file);

    // The mapped-ram layout when save_image_format / snapshot_image_format
    // say "sparse"; nothing for the plain stream.
    std::optional<qemu::MappedRam> save_layout() const { return image_layout(config_.save_image_format); }
    std::optional<qemu::MappedRam> snapshot_layout() const { return image_layout(config_.snapshot_image_format); }
    std::optional<qemu::MappedRam> image_layout(const std::string &format) const {
        if (format != "sparse") return std::nullopt;
        return qemu::MappedRam{config_.memory_image_channels};
    }

    // What every start path (start, restore, revert) hands to DomainProcess:
    // the host's probe with the hugetlbfs mounts found at load().
    qemu::HostProbe host_probe() const;

    StateLayout layout_;
    DaemonConfig config_;
    std::vector<qemu::HugetlbfsMount> hugetlbfs_;
    DomainConfigStore configs_;
    qemu::DomainRegistry domains_;
    rpc::EventSink *events_ = nullptr;
    std::string host_uuid_;
};

}  // namespace virtsnap::daemon
