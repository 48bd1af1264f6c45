// qemu_driver.cc - connection and domain-definition APIs of the QEMU driver.

#include "daemon/qemu_driver.hh"

#include "daemon/check_flags.hh"
#include "daemon/host_capabilities.hh"
#include "qemu/host_probe.hh"
#include "qemu/qemu_img.hh"
#include "qemu_snapshot/snapshot_delete.hh"
#include "util/file.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <fstream>

#include <sys/stat.h>
#include <sstream>

#include <glib.h>
#include <unistd.h>

#define LOG_MODULE "daemon.driver"

namespace virtsnap::daemon {

namespace {

// virsh and the bindings compare against libvirt 9.0.0's numbers.
constexpr uint64_t kLibVersion = 9000000;

Error no_domain_by_uuid(const rpc::DomainRef &ref) {
    return make_error(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU,
                      "no domain with matching uuid '" + ref.uuid.str() + "' (" + ref.name + ")");
}

// CPU time of a whole process (all its threads), from utime + stime of
// /proc/<pid>/stat in clock ticks, as libvirt's qemuGetProcessInfo; 0 when unreadable.
uint64_t process_cpu_time_ns(pid_t pid) {
    if (pid <= 0) return 0;
    auto text = file::read("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (!text) return 0;
    // The command name in parentheses may hold spaces: the fields start after the last ')'.
    size_t close = text->rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream in(text->substr(close + 1));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    // Fields 3 .. 13 (state .. cmajflt), then 14 utime and 15 stime.
    for (int i = 3; i <= 13 && (in >> field); i++) {}
    if (!(in >> utime >> stime)) return 0;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) return 0;
    return (utime + stime) * 1000000000ull / uint64_t(hz);
}

std::string read_first_line_matching(const char *path, const char *prefix) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(prefix, 0) == 0) return line;
    return {};
}

}  // namespace

QemuDriver::QemuDriver(StateLayout layout, DaemonConfig config)
    : layout_(std::move(layout)), config_(std::move(config)), configs_(layout_) {
    // A stable host UUID per root, so capabilities do not change between runs.
    std::string path = layout_.lib_dir() + "/host-uuid";
    if (auto text = file::read(path, 64); text && Uuid::parse(*text)) {
        host_uuid_ = Uuid::parse(*text)->str();
    } else {
        host_uuid_ = Uuid::generate().str();
        (void)file::write_atomic(path, host_uuid_, 0644);
    }
}

QemuDriver::~QemuDriver() = default;

Status QemuDriver::load() {
    hugetlbfs_ = TRY(qemu::find_hugetlbfs_mounts(config_.hugetlbfs_mount));
    for (const auto &m : hugetlbfs_) VS_INFO("hugetlbfs %s: %llu KiB pages", m.path.c_str(), m.page_kib);
    auto report = TRY(configs_.load_all([&](const std::string &, std::string_view text) -> Status {
        auto def = TRY(conf::DomainDef::parse_string(text, conf::kDomainParseInactive));
        auto dom = std::make_shared<qemu::DomainObj>(std::shared_ptr<const conf::DomainDef>(std::move(def)), true);
        if (auto ms = layout_.managed_save_file(dom->def->name)) dom->has_managed_save = file::exists(*ms);  // [save]
        return domains_.add(std::move(dom));
    }));
    for (const auto &s : report.skipped)
        VS_WARN("skipped domain config %s: %s", s.path.c_str(), s.error.message().c_str());
    VS_INFO("loaded %zu domain configurations", report.loaded.size());
    TRY(reattach_all());
    // [recovery] finish or roll back the jobs a killed daemon left (journals).
    if (auto st = recover_jobs(); !st) VS_WARN("job recovery: %s", st.error().message().c_str());  // [recovery]
    return ok();
}

Result<std::shared_ptr<qemu::DomainObj>> QemuDriver::find(const rpc::DomainRef &ref) const {
    auto dom = domains_.find_by_uuid(ref.uuid);
    if (!dom) return fail(no_domain_by_uuid(ref));
    return dom;
}

rpc::DomainRef QemuDriver::ref_of(const qemu::DomainObj &dom) const {
    return rpc::DomainRef{dom.def->name, dom.uuid, dom.id};
}

void QemuDriver::emit_lifecycle(const std::shared_ptr<qemu::DomainObj> &dom, int event, int detail) {
    if (!events_) return;
    rpc::DomainRef ref;
    {
        std::lock_guard lock(dom->mu);
        ref = ref_of(*dom);
    }
    events_->domain_lifecycle(ref, event, detail);
}

std::unique_ptr<BlockJobEventRelay> QemuDriver::relay_commit_events(const std::shared_ptr<qemu::DomainObj> &dom,
                                                                    qemu::DomainProcess &process,
                                                                    const qemu_snapshot::ExternalDiskDelete &disk) {
    BlockJobEventSource job;
    // The job id commit_online() gives the block-commit of this disk.
    job.job_id = "commit-" + disk.target;
    job.target = disk.target;
    // Overlay on top: QEMU runs an active commit (ready, then pivot onto the base).
    bool active = disk.running_depth == 0;
    job.type = active ? VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT : VIR_DOMAIN_BLOCK_JOB_TYPE_COMMIT;
    {
        std::lock_guard lock(dom->mu);
        job.dom = ref_of(*dom);
        const conf::DomainDisk *d = dom->live ? dom->live->disk_by_target(disk.target) : nullptr;
        if (d && d->src.is_local() && !d->src.empty()) job.path = d->src.path;
    }
    job.path_after = active && !job.path.empty() ? disk.base : job.path;
    return std::make_unique<BlockJobEventRelay>(process.monitor(), events_, std::move(job));
}

Status QemuDriver::save_config(const conf::DomainDef &def) {
    return configs_.save(def.name, def.format_string(conf::kDomainFormatInactive | conf::kDomainFormatSecure),
                         def.uuid.str());
}

size_t QemuDriver::snapshot_count(const std::shared_ptr<qemu::DomainObj> &dom) {
    auto list = snapshots_of(dom);
    return list ? (*list)->count() : 0;
}

// ---- Connection ----

Status QemuDriver::connect_open(const rpc::Client &, const std::optional<std::string> &name, uint32_t flags) {
    TRY(check_flags(flags, VIR_CONNECT_RO, "qemuConnectOpen"));
    if (name && !name->empty() && name->rfind("qemu:", 0) != 0)
        return fail(VIR_ERR_NO_CONNECT, VIR_FROM_REMOTE, *name);
    return ok();
}

void QemuDriver::connect_close(const rpc::Client &) {}

Result<std::string> QemuDriver::connect_get_type(const rpc::Client &) { return std::string("QEMU"); }

Result<uint64_t> QemuDriver::connect_get_version(const rpc::Client &) {
    // QEMU's version as libvirt encodes it: major * 1,000,000 + minor * 1,000 + micro.
    std::string out;
    gchar *stdout_text = nullptr;
    gint status = 0;
    std::string cmd = config_.qemu_binary + " --version";
    if (g_spawn_command_line_sync(cmd.c_str(), &stdout_text, nullptr, &status, nullptr) && stdout_text) {
        out = stdout_text;
        g_free(stdout_text);
    }
    unsigned major = 0, minor = 0, micro = 0;
    auto at = out.find("version ");
    if (at == std::string::npos || std::sscanf(out.c_str() + at + 8, "%u.%u.%u", &major, &minor, &micro) < 2)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "cannot parse QEMU version from '" + out + "'");
    return uint64_t(major) * 1000000 + minor * 1000 + micro;
}

Result<uint64_t> QemuDriver::connect_get_lib_version(const rpc::Client &) { return kLibVersion; }

Result<std::string> QemuDriver::connect_get_hostname(const rpc::Client &) {
    char buf[256];
    if (gethostname(buf, sizeof buf) < 0)
        return fail(make_system_error(VIR_FROM_NONE, errno, "failed to determine host name"));
    buf[sizeof buf - 1] = '\0';
    return std::string(buf);
}

Result<std::string> QemuDriver::connect_get_uri(const rpc::Client &) { return std::string("qemu:///system"); }

Result<std::string> QemuDriver::connect_get_capabilities(const rpc::Client &c) {
    HostCapabilitiesInput in;
    in.host_uuid = host_uuid_;
    in.emulator = config_.qemu_binary;
    auto node = TRY(node_get_info(c));
    in.cpus = unsigned(node.cpus);
    in.memory_kib = node.memory_kib;
    in.machines = {"pc-i440fx-7.2", "pc-q35-7.2"};
    in.machine_aliases = {"pc", "q35"};
    in.machine_max_cpus = {255, 288};
    in.kvm_usable = qemu::host_kvm_support(config_.qemu_binary).usable;
    in.huge_pages = qemu::huge_page_pools();
    return format_host_capabilities(in);
}

Result<rpc::NodeInfo> QemuDriver::node_get_info(const rpc::Client &) {
    rpc::NodeInfo info;
    info.model = "x86_64";
    std::string mem = read_first_line_matching("/proc/meminfo", "MemTotal:");
    unsigned long long kib = 0;
    if (std::sscanf(mem.c_str(), "MemTotal: %llu", &kib) == 1) info.memory_kib = kib;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info.cpus = n > 0 ? int32_t(n) : 1;
    std::string mhz = read_first_line_matching("/proc/cpuinfo", "cpu MHz");
    double f = 0;
    if (auto colon = mhz.find(':'); colon != std::string::npos) f = std::atof(mhz.c_str() + colon + 1);
    info.mhz = int32_t(f);
    info.nodes = 1;
    info.sockets = 1;
    info.cores = info.cpus;
    info.threads = 1;
    return info;
}

Result<rpc::SecurityModel> QemuDriver::node_get_security_model(const rpc::Client &) {
    return rpc::SecurityModel{};  // no security driver: virsh skips the label query
}

// ---- Domain definitions and queries ----

Result<std::vector<rpc::DomainRef>> QemuDriver::connect_list_all_domains(const rpc::Client &, uint32_t flags) {
    const uint32_t all = VIR_CONNECT_LIST_DOMAINS_ACTIVE | VIR_CONNECT_LIST_DOMAINS_INACTIVE |
                         VIR_CONNECT_LIST_DOMAINS_PERSISTENT | VIR_CONNECT_LIST_DOMAINS_TRANSIENT |
                         VIR_CONNECT_LIST_DOMAINS_RUNNING | VIR_CONNECT_LIST_DOMAINS_PAUSED |
                         VIR_CONNECT_LIST_DOMAINS_SHUTOFF | VIR_CONNECT_LIST_DOMAINS_OTHER |
                         VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE | VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE |
                         VIR_CONNECT_LIST_DOMAINS_AUTOSTART | VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART |
                         VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT | VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT |
                         VIR_CONNECT_LIST_DOMAINS_HAS_CHECKPOINT | VIR_CONNECT_LIST_DOMAINS_NO_CHECKPOINT;
    TRY(check_flags(flags, all, "qemuConnectListAllDomains"));
    // Each group filters only when some but not all of its bits are set (libvirt's rule).
    auto group = [&](uint32_t a, uint32_t b, bool is_a) {
        bool fa = flags & a, fb = flags & b;
        if (fa == fb) return true;
        return fa ? is_a : !is_a;
    };
    std::vector<rpc::DomainRef> out;
    for (const auto &dom : domains_.list()) {
        std::string name;
        bool active, persistent, managed;
        int state;
        rpc::DomainRef ref;
        {
            std::lock_guard lock(dom->mu);
            active = dom->active();
            persistent = dom->persistent;
            state = dom->state;
            managed = dom->has_managed_save;
            name = dom->name();
            ref = ref_of(*dom);
        }
        if (!group(VIR_CONNECT_LIST_DOMAINS_ACTIVE, VIR_CONNECT_LIST_DOMAINS_INACTIVE, active)) continue;
        if (!group(VIR_CONNECT_LIST_DOMAINS_PERSISTENT, VIR_CONNECT_LIST_DOMAINS_TRANSIENT, persistent)) continue;
        uint32_t state_bits = flags & (VIR_CONNECT_LIST_DOMAINS_RUNNING | VIR_CONNECT_LIST_DOMAINS_PAUSED |
                                       VIR_CONNECT_LIST_DOMAINS_SHUTOFF | VIR_CONNECT_LIST_DOMAINS_OTHER);
        if (state_bits) {
            uint32_t mine = state == VIR_DOMAIN_RUNNING   ? VIR_CONNECT_LIST_DOMAINS_RUNNING
                            : state == VIR_DOMAIN_PAUSED  ? VIR_CONNECT_LIST_DOMAINS_PAUSED
                            : state == VIR_DOMAIN_SHUTOFF ? VIR_CONNECT_LIST_DOMAINS_SHUTOFF
                                                          : VIR_CONNECT_LIST_DOMAINS_OTHER;
            if (!(state_bits & mine)) continue;
        }
        if (!group(VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE, VIR_CONNECT_LIST_DOMAINS_NO_MANAGEDSAVE, managed)) continue;
        if (!group(VIR_CONNECT_LIST_DOMAINS_AUTOSTART, VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART,
                   configs_.autostart(name)))
            continue;
        if (!group(VIR_CONNECT_LIST_DOMAINS_HAS_SNAPSHOT, VIR_CONNECT_LIST_DOMAINS_NO_SNAPSHOT,
                   snapshot_count(dom) > 0))
            continue;
        if (!group(VIR_CONNECT_LIST_DOMAINS_HAS_CHECKPOINT, VIR_CONNECT_LIST_DOMAINS_NO_CHECKPOINT, false)) continue;
        out.push_back(std::move(ref));
    }
    return out;
}

Result<rpc::DomainRef> QemuDriver::domain_lookup_by_name(const rpc::Client &, const std::string &name) {
    auto dom = domains_.find_by_name(name);
    if (!dom) return fail(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain with matching name '" + name + "'");
    std::lock_guard lock(dom->mu);
    return ref_of(*dom);
}

Result<rpc::DomainRef> QemuDriver::domain_lookup_by_uuid(const rpc::Client &, const Uuid &uuid) {
    auto dom = domains_.find_by_uuid(uuid);
    if (!dom) return fail(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain with matching uuid '" + uuid.str() + "'");
    std::lock_guard lock(dom->mu);
    return ref_of(*dom);
}

Result<rpc::DomainRef> QemuDriver::domain_lookup_by_id(const rpc::Client &, int32_t id) {
    auto dom = domains_.find_by_id(id);
    if (!dom) return fail(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain with matching id " + std::to_string(id));
    std::lock_guard lock(dom->mu);
    return ref_of(*dom);
}

Result<rpc::DomainRef> QemuDriver::domain_define_xml(const rpc::Client &, const std::string &xml, uint32_t flags) {
    TRY(check_flags(flags, VIR_DOMAIN_DEFINE_VALIDATE, "qemuDomainDefineXMLFlags"));
    unsigned parse = conf::kDomainParseInactive;
    if (flags & VIR_DOMAIN_DEFINE_VALIDATE) parse |= conf::kDomainParseValidate;
    std::shared_ptr<const conf::DomainDef> def = TRY(conf::DomainDef::parse_string(xml, parse));

    auto existing = domains_.find_by_uuid(def->uuid);
    if (!existing) {
        if (auto same_name = domains_.find_by_name(def->name))
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                        "domain '" + def->name + "' is already defined with uuid " + same_name->uuid.str());
        TRY(save_config(*def));
        auto dom = std::make_shared<qemu::DomainObj>(def, true);
        if (auto st = domains_.add(dom); !st) {
            (void)configs_.remove(def->name);
            return fail(std::move(st).error());
        }
        emit_lifecycle(dom, VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_ADDED);
        std::lock_guard lock(dom->mu);
        return ref_of(*dom);
    }

    auto job = TRY(existing->job.begin("remoteDispatchDomainDefineXML", qemu::JobOperation::Unknown));
    std::string old_name;
    {
        std::lock_guard lock(existing->mu);
        old_name = existing->name();
    }
    if (old_name != def->name)
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                    "domain '" + old_name + "' already exists with uuid " + def->uuid.str());
    TRY(save_config(*def));
    bool was_persistent;
    {
        std::lock_guard lock(existing->mu);
        was_persistent = existing->persistent;
        existing->def = def;
        existing->persistent = true;
    }
    emit_lifecycle(existing, VIR_DOMAIN_EVENT_DEFINED,
                   was_persistent ? VIR_DOMAIN_EVENT_DEFINED_UPDATED : VIR_DOMAIN_EVENT_DEFINED_ADDED);
    std::lock_guard lock(existing->mu);
    return ref_of(*existing);
}

Status QemuDriver::domain_undefine(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags,
                    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                        VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM |
                        VIR_DOMAIN_UNDEFINE_KEEP_NVRAM,
                    "qemuDomainUndefineFlags"));
    auto dom = TRY(find(ref));
    auto job = TRY(dom->job.begin("remoteDispatchDomainUndefineFlags", qemu::JobOperation::Unknown));
    std::string name;
    bool active, persistent, managed;
    {
        std::lock_guard lock(dom->mu);
        name = dom->name();
        active = dom->active();
        persistent = dom->persistent;
        managed = dom->has_managed_save;
    }
    if (!persistent)
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "cannot undefine transient domain");
    size_t nsnap = snapshot_count(dom);
    if (!active && nsnap > 0 && !(flags & VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA))
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                    "cannot delete inactive domain with " + std::to_string(nsnap) + " snapshots");
    if (managed && !(flags & VIR_DOMAIN_UNDEFINE_MANAGED_SAVE))
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                    "Refusing to undefine while domain managed save image exists");
    if (managed) {
        auto path = TRY(layout_.managed_save_file(name));
        TRY(file::remove(path));
    }
    if (!active && nsnap > 0 && (flags & VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)) {
        auto list = TRY(snapshots_of(dom));
        TRY(list->remove_all());
    }
    TRY(configs_.remove(name));
    (void)configs_.set_autostart(name, false);
    emit_lifecycle(dom, VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_REMOVED);
    if (active) {
        std::lock_guard lock(dom->mu);
        dom->persistent = false;
    } else {
        domains_.remove(dom->uuid);
    }
    return ok();
}

Result<std::string> QemuDriver::domain_get_xml_desc(const rpc::Client &c, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags,
                    VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_UPDATE_CPU |
                        VIR_DOMAIN_XML_MIGRATABLE,
                    "qemuDomainGetXMLDesc"));
    if ((flags & VIR_DOMAIN_XML_SECURE) && c.read_only)
        return fail(VIR_ERR_OPERATION_DENIED, VIR_FROM_DOMAIN, "virDomainGetXMLDesc with secure flag");
    auto dom = TRY(find(ref));
    std::shared_ptr<const conf::DomainDef> def;
    bool live;
    {
        std::lock_guard lock(dom->mu);
        live = dom->live && !(flags & VIR_DOMAIN_XML_INACTIVE);
        def = live ? dom->live : dom->def;
    }
    unsigned fmt = 0;
    if (!live) fmt |= conf::kDomainFormatInactive;
    if (flags & VIR_DOMAIN_XML_SECURE) fmt |= conf::kDomainFormatSecure;
    if (flags & VIR_DOMAIN_XML_MIGRATABLE) fmt |= conf::kDomainFormatMigratable;
    return def->format_string(fmt);
}

Result<rpc::DomainInfo> QemuDriver::domain_get_info(const rpc::Client &, const rpc::DomainRef &ref) {
    auto dom = TRY(find(ref));
    std::lock_guard lock(dom->mu);
    const conf::DomainDef &def = dom->live ? *dom->live : *dom->def;
    rpc::DomainInfo info;
    info.state = uint8_t(dom->state);
    info.max_mem_kib = def.max_memory_kib;
    info.memory_kib = dom->active() ? (def.current_memory_kib ? def.current_memory_kib : def.max_memory_kib)
                                    : (def.current_memory_kib ? def.current_memory_kib : def.max_memory_kib);
    info.nr_virt_cpu = uint16_t(def.vcpus_current.value_or(def.vcpus));
    if (dom->active() && dom->process) info.cpu_time_ns = process_cpu_time_ns(dom->process->pid());
    return info;
}

Result<rpc::DomainState> QemuDriver::domain_get_state(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainGetState"));
    auto dom = TRY(find(ref));
    std::lock_guard lock(dom->mu);
    return rpc::DomainState{dom->state, dom->reason};
}

Result<std::string> QemuDriver::domain_get_os_type(const rpc::Client &, const rpc::DomainRef &ref) {
    auto dom = TRY(find(ref));
    std::lock_guard lock(dom->mu);
    return dom->def->os.type;
}

Result<bool> QemuDriver::domain_is_active(const rpc::Client &, const rpc::DomainRef &ref) {
    auto dom = TRY(find(ref));
    std::lock_guard lock(dom->mu);
    return dom->active();
}

Result<bool> QemuDriver::domain_is_persistent(const rpc::Client &, const rpc::DomainRef &ref) {
    auto dom = TRY(find(ref));
    std::lock_guard lock(dom->mu);
    return dom->persistent;
}

Result<bool> QemuDriver::domain_get_autostart(const rpc::Client &, const rpc::DomainRef &ref) {
    auto dom = TRY(find(ref));
    std::string name;
    {
        std::lock_guard lock(dom->mu);
        name = dom->name();
    }
    return configs_.autostart(name);
}

Status QemuDriver::domain_set_autostart(const rpc::Client &, const rpc::DomainRef &ref, bool autostart) {
    auto dom = TRY(find(ref));
    std::string name;
    bool persistent;
    {
        std::lock_guard lock(dom->mu);
        name = dom->name();
        persistent = dom->persistent;
    }
    if (!persistent)
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "cannot set autostart for transient domain");
    return configs_.set_autostart(name, autostart);
}

Result<bool> QemuDriver::domain_has_managed_save_image(const rpc::Client &, const rpc::DomainRef &ref,
                                                       uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainHasManagedSaveImage"));
    auto dom = TRY(find(ref));
    std::lock_guard lock(dom->mu);
    return dom->has_managed_save;
}

Result<rpc::SecurityLabel> QemuDriver::domain_get_security_label(const rpc::Client &, const rpc::DomainRef &ref) {
    TRY(find(ref));
    return rpc::SecurityLabel{};
}

Result<std::vector<std::string>> QemuDriver::domain_get_messages(const rpc::Client &, const rpc::DomainRef &ref,
                                                                 uint32_t flags) {
    TRY(check_flags(flags, VIR_DOMAIN_MESSAGE_DEPRECATION | VIR_DOMAIN_MESSAGE_TAINTING, "qemuDomainGetMessages"));
    TRY(find(ref));
    return std::vector<std::string>{};
}

Result<rpc::BlockInfo> QemuDriver::domain_get_block_info(const rpc::Client &, const rpc::DomainRef &ref,
                                                         const std::string &path, uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainGetBlockInfo"));
    auto dom = TRY(find(ref));
    std::shared_ptr<const conf::DomainDef> def;
    {
        std::lock_guard lock(dom->mu);
        def = dom->live ? dom->live : dom->def;
    }
    int idx = def->disk_index_by_name(path);
    if (idx < 0)
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_QEMU, "invalid path " + path + " not assigned to domain");
    const conf::DomainDisk &disk = def->disks[size_t(idx)];
    if (disk.src.empty())
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_QEMU, "disk '" + disk.target_dev + "' does not currently have a source assigned");
    if (!disk.src.is_local())
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "block info is not supported for network disk '" + disk.target_dev + "'");
    // -U: the image may be open read-write by a running QEMU.
    auto info = TRY(qemu::qemu_img::info(disk.src.path, disk.src.format, true));
    rpc::BlockInfo out;
    out.capacity = info.virtual_size;
    struct stat st;
    if (::stat(disk.src.path.c_str(), &st) == 0) {
        out.physical = S_ISREG(st.st_mode) ? uint64_t(st.st_size) : info.virtual_size;
        out.allocation = S_ISREG(st.st_mode) ? uint64_t(st.st_blocks) * 512 : info.virtual_size;
    }
    return out;
}

}  // namespace virtsnap::daemon
