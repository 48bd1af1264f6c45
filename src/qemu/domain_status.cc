// domain_status.cc - formats and parses the <domstatus> runtime status file.

#include "qemu/domain_status.hh"

#include "util/file.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <array>
#include <charconv>
#include <cinttypes>
#include <cstdio>

namespace virtsnap::qemu {

namespace {

constexpr virErrorDomain kDomain = VIR_FROM_QEMU;
// Status files are small; a domain with many disks is still far below this.
constexpr size_t kMaxStatusBytes = 4 * 1024 * 1024;

// libvirt's VIR_ENUM_IMPL tables (domain_conf.c) for the values libvirt 9.0's
// public header defines; sizes are checked against the header's _LAST values.
constexpr std::array<std::string_view, 8> kStates = {
    "nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"};
constexpr std::array<std::string_view, 1> kNostateReasons = {"unknown"};
constexpr std::array<std::string_view, 12> kRunningReasons = {
    "unknown", "booted", "migrated", "restored", "from snapshot", "unpaused",
    "migration canceled", "save canceled", "wakeup", "crashed", "post-copy", "post-copy failed"};
constexpr std::array<std::string_view, 1> kBlockedReasons = {"unknown"};
constexpr std::array<std::string_view, 14> kPausedReasons = {
    "unknown", "user", "migration", "save", "dump", "ioerror", "watchdog", "from snapshot",
    "shutdown", "snapshot", "panicked", "starting up", "post-copy", "post-copy failed"};
constexpr std::array<std::string_view, 2> kShutdownReasons = {"unknown", "user"};
constexpr std::array<std::string_view, 9> kShutoffReasons = {
    "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot", "daemon"};
constexpr std::array<std::string_view, 2> kCrashedReasons = {"unknown", "panicked"};
constexpr std::array<std::string_view, 1> kPmsuspendedReasons = {"unknown"};

static_assert(kRunningReasons.size() == VIR_DOMAIN_RUNNING_POSTCOPY_FAILED + 1);
static_assert(kPausedReasons.size() == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED + 1);
static_assert(kShutoffReasons.size() == VIR_DOMAIN_SHUTOFF_DAEMON + 1);
static_assert(kStates.size() == VIR_DOMAIN_PMSUSPENDED + 1);

struct ReasonTable {
    const std::string_view *names;
    size_t size;
};

ReasonTable reasons_of(int state) {
    switch (state) {
    case VIR_DOMAIN_NOSTATE: return {kNostateReasons.data(), kNostateReasons.size()};
    case VIR_DOMAIN_RUNNING: return {kRunningReasons.data(), kRunningReasons.size()};
    case VIR_DOMAIN_BLOCKED: return {kBlockedReasons.data(), kBlockedReasons.size()};
    case VIR_DOMAIN_PAUSED: return {kPausedReasons.data(), kPausedReasons.size()};
    case VIR_DOMAIN_SHUTDOWN: return {kShutdownReasons.data(), kShutdownReasons.size()};
    case VIR_DOMAIN_SHUTOFF: return {kShutoffReasons.data(), kShutoffReasons.size()};
    case VIR_DOMAIN_CRASHED: return {kCrashedReasons.data(), kCrashedReasons.size()};
    case VIR_DOMAIN_PMSUSPENDED: return {kPmsuspendedReasons.data(), kPmsuspendedReasons.size()};
    default: return {nullptr, 0};
    }
}

template <typename T>
std::optional<T> parse_number(std::string_view s, int base = 10) {
    T v{};
    if (base == 16 && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

Unexpected bad(std::string what) { return fail(VIR_ERR_XML_ERROR, kDomain, std::move(what)); }

template <typename T>
Result<T> number_attr(const xml::Node &n, const char *name, bool required, T fallback, int base = 10) {
    auto text = n.attr(name);
    if (!text) {
        if (required)
            return bad("missing attribute '" + std::string(name) + "' of <" + std::string(n.name()) + ">");
        return fallback;
    }
    auto v = parse_number<T>(*text, base);
    if (!v) return bad("invalid " + std::string(name) + " '" + *text + "' in <" + std::string(n.name()) + ">");
    return *v;
}

}  // namespace

std::string_view domain_state_name(int state) {
    if (state < 0 || size_t(state) >= kStates.size()) return "nostate";
    return kStates[size_t(state)];
}

std::string_view domain_reason_name(int state, int reason) {
    ReasonTable t = reasons_of(state);
    if (!t.names || reason < 0 || size_t(reason) >= t.size) return "unknown";
    return t.names[size_t(reason)];
}

std::optional<int> domain_state_from_name(std::string_view name) {
    for (size_t i = 0; i < kStates.size(); ++i)
        if (kStates[i] == name) return int(i);
    return std::nullopt;
}

std::optional<int> domain_reason_from_name(int state, std::string_view name) {
    ReasonTable t = reasons_of(state);
    for (size_t i = 0; i < t.size; ++i)
        if (t.names[i] == name) return int(i);
    return std::nullopt;
}

const DiskNodeNames *DomainStatus::disk(std::string_view target) const {
    for (const auto &d : disks)
        if (d.target == target) return &d;
    return nullptr;
}

std::string DomainStatus::format() const {
    xml::Writer w;
    w.open("domstatus", {{"state", std::string(domain_state_name(state))},
                         {"reason", std::string(domain_reason_name(state, reason))},
                         {"pid", std::to_string(pid)}});
    w.empty("process", {{"startTime", start_time ? std::optional(std::to_string(start_time)) : std::nullopt},
                        {"noShutdown", no_shutdown ? "yes" : "no"}});
    if (!monitor_path.empty()) w.empty("monitor", {{"path", monitor_path}, {"type", "unix"}});
    if (!agent_path.empty()) w.empty("agent", {{"path", agent_path}, {"type", "unix"}});
    if (!log_path.empty()) w.empty("log", {{"path", log_path}});
    for (const auto &m : memory_paths) w.empty("memoryPath", {{"path", m}});
    w.empty("nodename", {{"index", std::to_string(next_node_index)}});
    if (!disks.empty()) {
        w.open("blockGraph");
        for (const auto &d : disks) {
            if (d.layers.empty()) {
                w.empty("disk", {{"dev", d.target}});
                continue;
            }
            w.open("disk", {{"dev", d.target}});
            for (const auto &l : d.layers)
                w.empty("layer", {{"index", std::to_string(l.index)}, {"storage", l.storage}, {"format", l.format}});
            w.close("disk");
        }
        w.close("blockGraph");
    }
    if (job) {
        char flags[32];
        std::snprintf(flags, sizeof flags, "0x%llx", job->flags);
        w.empty("job", {{"async", job->async},
                        {"phase", job->phase.empty() ? std::nullopt : std::optional(job->phase)},
                        {"id", job->id.empty() ? std::nullopt : std::optional(job->id)},
                        {"flags", std::string(flags)}});
    }
    if (def) def->format(w, conf::kDomainFormatStatus | conf::kDomainFormatSecure);
    w.close("domstatus");
    return w.take();
}

Result<DomainStatus> DomainStatus::parse(std::string_view text, std::string_view what) {
    xml::Document doc = TRY(xml::parse_with_root(text, what, "domstatus", kDomain));
    xml::Node root = doc.root();
    DomainStatus st;

    auto state_text = root.attr("state");
    if (!state_text) return bad("missing domain state");
    auto state = domain_state_from_name(*state_text);
    if (!state) return bad("invalid domain state '" + *state_text + "'");
    st.state = *state;
    if (auto reason_text = root.attr("reason")) {
        auto reason = domain_reason_from_name(st.state, *reason_text);
        if (!reason) return bad("invalid domain reason '" + *reason_text + "'");
        st.reason = *reason;
    }
    st.pid = TRY(number_attr<pid_t>(root, "pid", true, -1));
    if (st.pid <= 0) return bad("invalid pid '" + root.attr("pid").value_or("") + "'");

    if (xml::Node p = root.child("process")) {
        st.start_time = TRY(number_attr<unsigned long long>(p, "startTime", false, 0));
        st.no_shutdown = p.attr("noShutdown").value_or("yes") == "yes";
    }
    xml::Node mon = root.child("monitor");
    if (!mon || !mon.attr("path")) return bad("no monitor path");
    st.monitor_path = *mon.attr("path");
    if (xml::Node a = root.child("agent")) st.agent_path = a.attr("path").value_or("");
    if (xml::Node l = root.child("log")) st.log_path = l.attr("path").value_or("");
    for (xml::Node m : root.children("memoryPath"))
        if (auto path = m.attr("path")) st.memory_paths.push_back(*path);
    if (xml::Node n = root.child("nodename")) st.next_node_index = TRY(number_attr<unsigned>(n, "index", true, 1));

    if (xml::Node graph = root.child("blockGraph")) {
        for (xml::Node d : graph.children("disk")) {
            DiskNodeNames disk;
            auto dev = d.attr("dev");
            if (!dev || dev->empty()) return bad("missing dev of <disk> in <blockGraph>");
            disk.target = *dev;
            for (xml::Node l : d.children("layer")) {
                LayerNodeNames layer;
                layer.index = TRY(number_attr<unsigned>(l, "index", true, 0));
                layer.storage = l.attr("storage").value_or("");
                layer.format = l.attr("format").value_or("");
                if (layer.storage.empty() || layer.format.empty())
                    return bad("missing node name of layer " + std::to_string(layer.index) + " of disk '" +
                               disk.target + "'");
                disk.layers.push_back(std::move(layer));
            }
            st.disks.push_back(std::move(disk));
        }
    }
    if (xml::Node j = root.child("job")) {
        StatusJob job;
        job.async = j.attr("async").value_or("");
        job.phase = j.attr("phase").value_or("");
        job.id = j.attr("id").value_or("");
        job.flags = TRY(number_attr<unsigned long long>(j, "flags", false, 0, 16));
        st.job = std::move(job);
    }
    xml::Node dom = root.child("domain");
    if (!dom) return bad("no domain definition in status XML");
    auto def = TRY(conf::DomainDef::parse_node(dom, conf::kDomainParseStatus));
    st.def = std::shared_ptr<const conf::DomainDef>(std::move(def));
    return st;
}

Status DomainStatus::save(const std::string &path) const {
    // Atomic at once, durable within DeferredSync's delay: the file describes
    // a running QEMU, which a power loss takes with it, and a daemon killed at
    // any instant finds the old or the new version. The fsyncs it would cost
    // otherwise sat inside every pause, the STOP handler writing this file
    // before the reply to `stop` is read.
    return file::write_atomic(path, format(), 0600, kDomain, file::Durability::Deferred);
}

Result<DomainStatus> DomainStatus::load(const std::string &path) {
    std::string text = TRY(file::read(path, kMaxStatusBytes, kDomain));
    return parse(text, path);
}

}  // namespace virtsnap::qemu
