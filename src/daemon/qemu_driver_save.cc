// qemu_driver_save.cc - virDomainSave(Flags), virDomainRestore(Flags), managed
// save and starting a domain from its managed save image, with libvirt 9.0's
// semantics (qemuDomainSaveInternal, qemuDomainRestoreFlags,
// qemuDomainObjStart) and its save image format (qemu/save_image.hh).
//
// Save, as a state machine (the job is held throughout):
//
//   running ──stop(paused/save)──► paused ──create image──► header written
//      ──migrate to the image fd──► stream written ──finalize──► image complete
//      ──stop QEMU──► SHUTOFF/saved, event STOPPED_SAVED   (commit point: the
//                     image is complete; a transient domain disappears)
//   Any failure before the commit point: the image is dropped (a file we
//   created is removed, an existing file is left as it was) and the guest is
//   resumed (RUNNING/save canceled) if the save paused it.
//
// Restore: open and check the image, take (or create, transient) the domain
// object, start QEMU with -incoming defer and migrate-incoming from the image
// fd, then resume unless the image says paused or the caller asked for it:
// events STARTED_RESTORED, then SUSPENDED_RESTORED/_PAUSED when left paused.

#include "daemon/qemu_driver.hh"

#include "daemon/check_flags.hh"
#include "qemu/domain_process.hh"
#include "qemu/host_probe.hh"
#include "qemu/memory_migration.hh"
#include "qemu/process_paths.hh"
#include "qemu/save_image.hh"
#include "util/file.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <fcntl.h>
#include <unistd.h>

#define LOG_MODULE "daemon.save"

namespace virtsnap::daemon {

namespace {

constexpr uint32_t kSaveFlags = VIR_DOMAIN_SAVE_BYPASS_CACHE | VIR_DOMAIN_SAVE_RUNNING | VIR_DOMAIN_SAVE_PAUSED;

Error not_running() { return make_error(VIR_ERR_OPERATION_INVALID, VIR_FROM_DOMAIN, "domain is not running"); }

Status check_exclusive_running_paused(uint32_t flags) {
    if ((flags & VIR_DOMAIN_SAVE_RUNNING) && (flags & VIR_DOMAIN_SAVE_PAUSED))
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN,
                    "Flags 'VIR_DOMAIN_SAVE_RUNNING' and 'VIR_DOMAIN_SAVE_PAUSED' are mutually exclusive");
    return ok();
}

// The definition written into an image: libvirt's qemuDomainDefFormatLive
// with inactive + migratable (+ secure).
constexpr unsigned kImageXmlFlags =
    conf::kDomainFormatSecure | conf::kDomainFormatInactive | conf::kDomainFormatMigratable;

// A replacement XML (dxml) is accepted when it describes the same guest as
// the image; virtsnap has no ABI-stability check, so "the same" means an
// identical definition once normalised.
Result<std::string> check_replacement_xml(const std::string &dxml, const conf::DomainDef &current) {
    auto def = TRY(conf::DomainDef::parse_string(dxml, conf::kDomainParseInactive));
    if (def->name != current.name)
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
                    "Target domain name '" + def->name + "' does not match source '" + current.name + "'");
    if (def->uuid != current.uuid)
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
                    "Target domain uuid " + def->uuid.str() + " does not match source " + current.uuid.str());
    std::string mine = current.format_string(kImageXmlFlags);
    if (def->format_string(kImageXmlFlags) != mine)
        return fail(VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_FROM_QEMU,
                    "changing the domain XML of a save image is not supported");
    return mine;
}

void drop_page_cache(const std::string &path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
}

}  // namespace

// ---------------------------------------------------------------------------
// save

// The body shared by virDomainSaveFlags and virDomainManagedSave; the caller
// holds the job. Returns once the domain is shut off with its image complete.
// `layout`: a sparse image (save_image_format = "sparse"); `direct_io`:
// memory_image_direct_io, for a raw one.
static Status save_domain_locked(const std::shared_ptr<qemu::DomainObj> &dom, const std::string &path,
                                 const std::optional<std::string> &dxml, uint32_t flags,
                                 const std::optional<qemu::MappedRam> &layout, const std::string &direct_io);

Status QemuDriver::domain_save(const rpc::Client &, const rpc::DomainRef &ref, const std::string &to,
                               const std::optional<std::string> &dxml, uint32_t flags) {
    TRY(check_flags(flags, kSaveFlags, "qemuDomainSaveFlags"));
    TRY(check_exclusive_running_paused(flags));
    auto dom = TRY(find(ref));
    {
        std::lock_guard lock(dom->mu);
        if (!dom->active()) return fail(not_running());
    }
    auto job = TRY(dom->job.begin("remoteDispatchDomainSaveFlags", qemu::JobOperation::Save));
    TRY(save_domain_locked(dom, to, dxml, flags, save_layout(), config_.memory_image_direct_io));
    release_stopped_process(dom);
    return ok();
}

Status QemuDriver::domain_managed_save(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, kSaveFlags, "qemuDomainManagedSave"));
    TRY(check_exclusive_running_paused(flags));
    auto dom = TRY(find(ref));
    std::string name;
    {
        std::lock_guard lock(dom->mu);
        if (!dom->active()) return fail(not_running());
        if (!dom->persistent)
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "cannot do managed save for transient domain");
        name = dom->name();
    }
    auto job = TRY(dom->job.begin("remoteDispatchDomainManagedSave", qemu::JobOperation::Save));
    auto path = TRY(layout_.managed_save_file(name));
    TRY(file::make_dirs(layout_.save_dir(), 0755, VIR_FROM_QEMU));
    TRY(save_domain_locked(dom, path, std::nullopt, flags, save_layout(), config_.memory_image_direct_io));
    {
        std::lock_guard lock(dom->mu);
        dom->has_managed_save = true;
    }
    release_stopped_process(dom);
    return ok();
}

Status QemuDriver::domain_managed_save_remove(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainManagedSaveRemove"));
    auto dom = TRY(find(ref));
    auto job = TRY(dom->job.begin("remoteDispatchDomainManagedSaveRemove", qemu::JobOperation::Unknown));
    std::string name;
    {
        std::lock_guard lock(dom->mu);
        name = dom->name();
    }
    auto path = TRY(layout_.managed_save_file(name));
    if (file::exists(path) && ::unlink(path.c_str()) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "Failed to remove managed save file '" + path + "'"));
    std::lock_guard lock(dom->mu);
    dom->has_managed_save = false;
    return ok();
}

static Status save_domain_locked(const std::shared_ptr<qemu::DomainObj> &dom, const std::string &path,
                                 const std::optional<std::string> &dxml, uint32_t flags,
                                 const std::optional<qemu::MappedRam> &layout, const std::string &direct_io) {
    qemu::DomainProcess *p;
    std::shared_ptr<const conf::DomainDef> live;
    {
        std::lock_guard lock(dom->mu);
        p = dom->process.get();
        live = dom->live;
        if (!p || !dom->active() || !live) return fail(not_running());
    }
    auto [state, reason] = p->state();
    (void)reason;
    if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED)
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "guest unexpectedly quit");

    std::string xml = live->format_string(kImageXmlFlags);
    if (dxml) xml = TRY(check_replacement_xml(*dxml, *live));
    // A QEMU that cannot write the configured layout fails here, untouched.
    if (layout) TRY(qemu::check_mapped_ram(p->monitor(), *layout));

    // libvirt pauses the guest first, so the image is one consistent moment.
    bool paused_by_us = false;
    if (state == VIR_DOMAIN_RUNNING) {
        TRY(p->suspend(VIR_DOMAIN_PAUSED_SAVE));
        paused_by_us = true;
    }
    bool resume_after_restore = state == VIR_DOMAIN_RUNNING;
    if (flags & VIR_DOMAIN_SAVE_RUNNING) resume_after_restore = true;
    else if (flags & VIR_DOMAIN_SAVE_PAUSED) resume_after_restore = false;

    auto tracker = std::make_shared<qemu::MigrationTracker>(qemu::JobOperation::Save);
    auto fail_and_resume = [&](Error err) -> Status {
        {
            std::lock_guard lock(dom->mu);
            dom->completed_job = tracker->final_stats(err.code == VIR_ERR_OPERATION_ABORTED
                                                          ? VIR_DOMAIN_JOB_CANCELLED
                                                          : VIR_DOMAIN_JOB_FAILED);
        }
        if (paused_by_us && p->active()) {
            Status st = p->resume(VIR_DOMAIN_RUNNING_SAVE_CANCELED);
            if (!st) VS_WARN("Unable to resume guest CPUs after save failure: %s", st.error().message().c_str());
        }
        return fail(std::move(err));
    };

    qemu::SaveImageWriter::Options wo;
    wo.xml = xml;
    wo.cookie = std::string(qemu::kEmptySaveCookie);
    wo.was_running = resume_after_restore;
    wo.format = layout ? qemu::SaveImageHeader::kSparse : qemu::SaveImageHeader::kRaw;
    auto writer = qemu::SaveImageWriter::create(path, wo);
    if (!writer) return fail_and_resume(std::move(writer).error());

    dom->job.set_progress_provider([tracker] { return tracker->stats(); });
    qemu::MemoryMigrationOptions mo;
    mo.job_name = "domain save job";
    mo.tracker = tracker.get();
    mo.abort_requested = [dom] { return dom->job.abort_requested(); };
    mo.mapped_ram = layout;
    mo.direct_io =
        !layout && choose_memory_direct_io(direct_io, live->max_memory_kib << 10, flags & VIR_DOMAIN_SAVE_BYPASS_CACHE);
    auto migrated = qemu::migrate_memory_to_fd(p->monitor(), writer->fd(), mo);
    if (!migrated) return fail_and_resume(std::move(migrated).error());
    if (auto st = writer->finalize(); !st) return fail_and_resume(std::move(st).error());
    if (flags & VIR_DOMAIN_SAVE_BYPASS_CACHE) drop_page_cache(path);
    VS_INFO("saved domain '%s' to %s (%llu bytes of memory in %lld ms)", live->name.c_str(), path.c_str(),
            (unsigned long long)migrated->processed, (long long)migrated->elapsed.count());

    // Commit point: the image is complete; the guest now lives in it.
    {
        std::lock_guard lock(dom->mu);
        dom->completed_job = tracker->final_stats(VIR_DOMAIN_JOB_COMPLETED);
    }
    TRY(p->stop(VIR_DOMAIN_SHUTOFF_SAVED, VIR_DOMAIN_EVENT_STOPPED_SAVED));
    return ok();
}

// ---------------------------------------------------------------------------
// restore

// Starts `dom` from an opened image with `live` (the image's definition) as
// its live definition. The caller holds the job.
// `channels`: multifd channels reading a sparse image.
static Status restore_from_image(const StateLayout &layout, const qemu::HostProbe &host,
                                 qemu::DomainRegistry &domains, qemu::DomainProcess::EventHandler handler,
                                 const std::shared_ptr<qemu::DomainObj> &dom, qemu::SaveImage &image,
                                 std::shared_ptr<conf::DomainDef> live, bool stay_paused, bool paused_by_request,
                                 unsigned channels);

Status QemuDriver::domain_restore(const rpc::Client &, const std::string &from, const std::optional<std::string> &dxml,
                                  uint32_t flags) {
    TRY(check_flags(flags, kSaveFlags | VIR_DOMAIN_SAVE_RESET_NVRAM, "qemuDomainRestoreFlags"));
    TRY(check_exclusive_running_paused(flags));
    qemu::SaveImage image = TRY(qemu::open_save_image(from));
    std::shared_ptr<conf::DomainDef> def =
        TRY(conf::DomainDef::parse_string(image.xml, conf::kDomainParseInactive | conf::kDomainParseSkipValidate));
    if (dxml) {
        TRY(check_replacement_xml(*dxml, *def));
    }
    if (flags & VIR_DOMAIN_SAVE_RUNNING) image.header.was_running = 1;
    else if (flags & VIR_DOMAIN_SAVE_PAUSED) image.header.was_running = 0;

    // virDomainObjListAdd with LIVE | CHECK_LIVE: the image's guest must not
    // run already; an unknown guest becomes a transient domain.
    std::shared_ptr<qemu::DomainObj> dom = domains_.find_by_uuid(def->uuid);
    bool created = false;
    if (dom) {
        std::lock_guard lock(dom->mu);
        if (dom->name() != def->name)
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                        "domain '" + dom->name() + "' is already defined with uuid " + dom->uuid.str());
        if (dom->active())
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "domain '" + def->name + "' is already active");
        if (!dom->persistent)
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                        "domain '" + def->name + "' is already being started");
    } else {
        if (auto same_name = domains_.find_by_name(def->name))
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                        "domain '" + def->name + "' already exists with uuid " + same_name->uuid.str());
        dom = std::make_shared<qemu::DomainObj>(def, false);
        TRY(domains_.add(dom));
        created = true;
    }
    auto job = dom->job.begin("remoteDispatchDomainRestoreFlags", qemu::JobOperation::Restore);
    if (!job) {
        if (created) domains_.remove(dom->uuid);
        return fail(std::move(job).error());
    }
    {
        std::lock_guard lock(dom->mu);
        if (dom->active()) {
            if (created) domains_.remove(dom->uuid);
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "domain '" + def->name + "' is already active");
        }
    }
    Status st = restore_from_image(layout_, host_probe(), domains_, process_handler(dom), dom, image, def, !image.header.was_running, flags & VIR_DOMAIN_SAVE_PAUSED,
                                   config_.memory_image_channels);
    if (!st && created) domains_.remove(dom->uuid);
    return st;
}

static Status restore_from_image(const StateLayout &layout, const qemu::HostProbe &host,
                                 qemu::DomainRegistry &domains, qemu::DomainProcess::EventHandler handler,
                                 const std::shared_ptr<qemu::DomainObj> &dom, qemu::SaveImage &image,
                                 std::shared_ptr<conf::DomainDef> live, bool stay_paused, bool paused_by_request,
                                 unsigned channels) {
    auto paths = TRY(qemu::ProcessPaths::for_domain(layout, live->name));
    int id = domains.allocate_id();
    live->id = id;

    qemu::DomainProcess::StartOptions opts;
    opts.paused = stay_paused || paused_by_request;
    opts.host = host;
    opts.incoming_fd = image.fd.get();
    opts.incoming_mapped_ram = qemu::incoming_layout(image.header, channels);
    opts.running_reason = VIR_DOMAIN_RUNNING_RESTORED;
    // libvirt leaves an incoming guest paused with reason "migration".
    opts.paused_reason = VIR_DOMAIN_PAUSED_MIGRATION;
    opts.started_detail = VIR_DOMAIN_EVENT_STARTED_RESTORED;
    opts.suspended_detail = paused_by_request ? VIR_DOMAIN_EVENT_SUSPENDED_PAUSED : VIR_DOMAIN_EVENT_SUSPENDED_RESTORED;

    auto started = std::chrono::steady_clock::now();
    auto process = TRY(qemu::DomainProcess::start(*live, paths, opts, std::move(handler)));
    auto [state, reason] = process->state();
    {
        std::lock_guard lock(dom->mu);
        dom->live = process->live_def() ? process->live_def() : live;
        dom->id = id;
        dom->state = state;
        dom->reason = reason;
        dom->process = std::move(process);
        qemu::JobStats done;
        done.type = VIR_DOMAIN_JOB_COMPLETED;
        done.params.push_back({VIR_DOMAIN_JOB_OPERATION, int32_t(qemu::JobOperation::Restore)});
        done.params.push_back(
            {VIR_DOMAIN_JOB_TIME_ELAPSED,
             uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                            started)
                          .count())});
        dom->completed_job = std::move(done);
    }
    domains.set_id(dom, id);
    VS_INFO("restored domain '%s' from %s", live->name.c_str(), image.path.c_str());
    return ok();
}

// ---------------------------------------------------------------------------
// managed save at start

Result<bool> QemuDriver::start_from_managed_save(const std::shared_ptr<qemu::DomainObj> &dom, uint32_t flags) {
    std::string name;
    std::shared_ptr<const conf::DomainDef> persistent;
    {
        std::lock_guard lock(dom->mu);
        if (dom->active()) return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "domain is already running");
        name = dom->name();
        persistent = dom->def;
    }
    auto path = TRY(layout_.managed_save_file(name));
    auto forget = [&] {
        std::lock_guard lock(dom->mu);
        dom->has_managed_save = false;
    };
    if (!file::exists(path)) {
        forget();
        return false;
    }
    if (flags & VIR_DOMAIN_START_FORCE_BOOT) {
        if (::unlink(path.c_str()) < 0)
            return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot remove managed save file " + path));
        forget();
        return false;
    }
    // An interrupted managed save is discarded and the guest boots, as libvirt.
    if (qemu::save_image_is_corrupt(path)) {
        VS_WARN("Ignoring incomplete managed state %s", path.c_str());
        if (::unlink(path.c_str()) < 0)
            return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot remove corrupt file: " + path));
        forget();
        return false;
    }
    qemu::SaveImage image = TRY(qemu::open_save_image(path));
    std::shared_ptr<conf::DomainDef> def =
        TRY(conf::DomainDef::parse_string(image.xml, conf::kDomainParseInactive | conf::kDomainParseSkipValidate));
    if (def->name != persistent->name || def->uuid != persistent->uuid)
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                    "cannot restore domain '" + persistent->name + "' uuid " + persistent->uuid.str() +
                        " from a file which belongs to domain '" + def->name + "' uuid " + def->uuid.str());
    bool start_paused = flags & VIR_DOMAIN_START_PAUSED;
    if (auto st = restore_from_image(layout_, host_probe(), domains_, process_handler(dom), dom, image, def, !image.header.was_running, start_paused,
                                         config_.memory_image_channels);
        !st) {
        VS_WARN("Unable to restore from managed state %s. Maybe the file is corrupted?", path.c_str());
        return fail(std::move(st).error());
    }
    if (::unlink(path.c_str()) < 0) {
        VS_WARN("Failed to remove the managed state %s", path.c_str());
    } else {
        forget();
    }
    return true;
}

}  // namespace virtsnap::daemon
