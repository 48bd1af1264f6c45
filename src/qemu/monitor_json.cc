// monitor_json.cc - the one file of virtsnap that builds and reads JSON.
//
// QMP commands and replies, guest-agent messages and QEMU's JSON command-line
// options are all converted here between JSON text and QValue / typed structs,
// so the rest of the code never handles JSON. The QAPI knowledge of the
// commands we use (member names, their order, reply shapes) lives here too, as
// libvirt keeps it in qemu_monitor_json.c.

#include "qemu/monitor_json.hh"
#include "qemu/monitor.hh"
#include "qemu/qvalue.hh"

#define LOG_MODULE "qemu.monitor_json"
#include "util/log.hh"

#include <nlohmann/json.hpp>

namespace virtsnap::qemu {

using nlohmann::ordered_json;

std::optional<int64_t> QValue::integer() const {
    if (auto i = std::get_if<int64_t>(&v)) return *i;
    if (auto u = std::get_if<uint64_t>(&v)) return int64_t(*u);
    return std::nullopt;
}

const QValue *QValue::get(std::string_view key) const {
    const QDict *d = dict();
    if (!d) return nullptr;
    for (const auto &[k, val] : *d)
        if (k == key) return &val;
    return nullptr;
}

namespace {

// QEMU never nests deeper than a handful of levels; the limit keeps the
// recursive conversion below safe against hostile input.
constexpr int kMaxJsonDepth = 64;

ordered_json to_json(const QValue &q) {
    return std::visit(
        [](const auto &x) -> ordered_json {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) return nullptr;
            else if constexpr (std::is_same_v<T, QDict>) {
                ordered_json o = ordered_json::object();
                for (const auto &[k, v] : x) o[k] = to_json(v);
                return o;
            } else if constexpr (std::is_same_v<T, QList>) {
                ordered_json a = ordered_json::array();
                for (const auto &v : x) a.push_back(to_json(v));
                return a;
            } else return x;
        },
        q.v);
}

QValue from_json(const ordered_json &j) {
    switch (j.type()) {
    case ordered_json::value_t::null: return QValue(nullptr);
    case ordered_json::value_t::boolean: return QValue(j.get<bool>());
    case ordered_json::value_t::number_integer: return QValue(j.get<int64_t>());
    case ordered_json::value_t::number_unsigned: return QValue(j.get<uint64_t>());
    case ordered_json::value_t::number_float: return QValue(j.get<double>());
    case ordered_json::value_t::string: return QValue(j.get<std::string>());
    case ordered_json::value_t::array: {
        QList l;
        for (const auto &e : j) l.push_back(from_json(e));
        return QValue(std::move(l));
    }
    case ordered_json::value_t::object: {
        QDict d;
        for (const auto &[k, v] : j.items()) d.emplace_back(k, from_json(v));
        return QValue(std::move(d));
    }
    default: return QValue(nullptr);
    }
}

// Nesting depth of JSON text, counted outside strings (cheap pre-check).
bool nesting_within_limit(std::string_view text) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth) return false;
        } else if (c == ']' || c == '}') --depth;
    }
    return true;
}

std::string dump(const ordered_json &j) {
    // Replacing invalid UTF-8 instead of throwing: QEMU strings are UTF-8, and a
    // stray byte from a guest must not take the daemon down.
    return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

}  // namespace

std::string qvalue_to_json(const QValue &value) { return dump(to_json(value)); }

Result<QValue> qvalue_from_json(std::string_view text) {
    if (!nesting_within_limit(text))
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "cannot parse json " + std::string(text.substr(0, 200)) + ": nesting too deep");
    auto j = ordered_json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded())
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "cannot parse json " + std::string(text.substr(0, 200)));
    return from_json(j);
}

// ---- Transaction actions (qapi/transaction.json) ----

namespace {
QValue action_value(std::string type, QDict data) {
    return QValue(QDict{{"type", QValue(std::move(type))}, {"data", QValue(std::move(data))}});
}
QDict bitmap_ref(const std::string &node, const std::string &name) {
    return QDict{{"node", QValue(node)}, {"name", QValue(name)}};
}
}  // namespace

Transaction &Transaction::action(const std::string &type, QDict data) {
    actions_.push_back(action_value(type, std::move(data)));
    return *this;
}

Transaction &Transaction::blockdev_snapshot(const std::string &node, const std::string &overlay) {
    return action("blockdev-snapshot", QDict{{"node", QValue(node)}, {"overlay", QValue(overlay)}});
}

Transaction &Transaction::blockdev_snapshot_internal_sync(const std::string &device, const std::string &name) {
    return action("blockdev-snapshot-internal-sync", QDict{{"device", QValue(device)}, {"name", QValue(name)}});
}

Transaction &Transaction::bitmap_add(const std::string &node, const std::string &name, bool persistent,
                                     bool disabled, std::optional<uint64_t> granularity) {
    QDict d = bitmap_ref(node, name);
    if (granularity) d.emplace_back("granularity", QValue(*granularity));
    d.emplace_back("persistent", QValue(persistent));
    if (disabled) d.emplace_back("disabled", QValue(true));
    return action("block-dirty-bitmap-add", std::move(d));
}

Transaction &Transaction::bitmap_remove(const std::string &node, const std::string &name) {
    return action("block-dirty-bitmap-remove", bitmap_ref(node, name));
}

Transaction &Transaction::bitmap_clear(const std::string &node, const std::string &name) {
    return action("block-dirty-bitmap-clear", bitmap_ref(node, name));
}

Transaction &Transaction::bitmap_enable(const std::string &node, const std::string &name) {
    return action("block-dirty-bitmap-enable", bitmap_ref(node, name));
}

Transaction &Transaction::bitmap_disable(const std::string &node, const std::string &name) {
    return action("block-dirty-bitmap-disable", bitmap_ref(node, name));
}

Transaction &Transaction::bitmap_merge(const std::string &node, const std::string &target,
                                       const std::vector<std::string> &sources) {
    QList bitmaps;
    for (const auto &s : sources) bitmaps.emplace_back(s);
    return action("block-dirty-bitmap-merge",
                  QDict{{"node", QValue(node)}, {"target", QValue(target)}, {"bitmaps", QValue(std::move(bitmaps))}});
}

// ---- QMP messages ----

namespace qmpjson {

namespace {

const std::string *str_member(const QValue &d, std::string_view key) {
    const QValue *v = d.get(key);
    return v ? v->str() : nullptr;
}
std::string str_or(const QValue &d, std::string_view key, std::string def = {}) {
    const std::string *s = str_member(d, key);
    return s ? *s : def;
}
std::optional<std::string> opt_str(const QValue &d, std::string_view key) {
    const std::string *s = str_member(d, key);
    if (!s) return std::nullopt;
    return *s;
}
std::optional<int64_t> opt_int(const QValue &d, std::string_view key) {
    const QValue *v = d.get(key);
    return v ? v->integer() : std::nullopt;
}
int64_t int_or(const QValue &d, std::string_view key, int64_t def = 0) { return opt_int(d, key).value_or(def); }
bool bool_or(const QValue &d, std::string_view key, bool def = false) {
    const QValue *v = d.get(key);
    if (!v) return def;
    return v->boolean().value_or(def);
}

Error malformed(std::string_view what) {
    return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "malformed " + std::string(what));
}

}  // namespace

Result<Message> parse_message(std::string_view line) {
    QValue v = TRY(qvalue_from_json(line));
    if (!v.dict())
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "Parsed JSON reply '" + std::string(line.substr(0, 200)) + "' isn't an object");
    Message m;
    if (const QValue *id = v.get("id")) {
        if (const std::string *s = id->str()) m.id = *s;
        else m.id = qvalue_to_json(*id);  // the agent echoes numbers; keep their text
    }
    if (const QValue *greeting = v.get("QMP")) {
        m.kind = Message::Kind::Greeting;
        if (!greeting->dict()) return fail(malformed("QMP greeting"));
        if (const QValue *ver = greeting->get("version")) {
            if (const QValue *q = ver->get("qemu")) {
                m.greeting.major = int(int_or(*q, "major"));
                m.greeting.minor = int(int_or(*q, "minor"));
                m.greeting.micro = int(int_or(*q, "micro"));
            }
            m.greeting.package = str_or(*ver, "package");
        }
        if (const QValue *caps = greeting->get("capabilities"); caps && caps->list())
            for (const auto &c : *caps->list())
                if (c.str()) m.greeting.capabilities.push_back(*c.str());
        return m;
    }
    if (const QValue *ev = v.get("event")) {
        if (!ev->str()) return fail(malformed("QMP event name"));
        m.kind = Message::Kind::Event;
        m.event.name = *ev->str();
        if (const QValue *data = v.get("data")) m.event.data = *data;
        if (const QValue *ts = v.get("timestamp")) {
            m.event.seconds = int_or(*ts, "seconds");
            m.event.microseconds = int_or(*ts, "microseconds");
        }
        return m;
    }
    if (const QValue *ret = v.get("return")) {
        m.kind = Message::Kind::Reply;
        m.ok = true;
        m.ret = *ret;
        return m;
    }
    if (const QValue *err = v.get("error")) {
        m.kind = Message::Kind::Reply;
        m.ok = false;
        if (err->dict()) {
            m.error_class = str_or(*err, "class");
            m.error_desc = str_or(*err, "desc");
        }
        return m;
    }
    return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                "unknown JSON reply '" + std::string(line.substr(0, 200)) + "'");
}

std::string build_command(std::string_view name, const QDict &args, std::string_view id) {
    ordered_json cmd = ordered_json::object();
    cmd["execute"] = std::string(name);
    if (!args.empty()) cmd["arguments"] = to_json(QValue(args));
    if (!id.empty()) cmd["id"] = std::string(id);
    return dump(cmd);
}

Error command_error(std::string_view command, const Message &reply) {
    // Only the command name and QEMU's desc reach the user; the full
    // exchange is in the debug log (monitor.cc). As libvirt, the desc counts
    // only when the error has a class.
    std::string desc = !reply.error_class.empty() && !reply.error_desc.empty() ? reply.error_desc
                                                                               : "unknown QEMU command error";
    return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                      "unable to execute QEMU command '" + std::string(command) + "': " + desc);
}

Error unexpected_type_error(std::string_view command) {
    return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                      "unexpected type returned by QEMU command '" + std::string(command) + "'");
}

// ---- reply parsers ----

Result<StatusInfo> parse_status(const QValue &ret) {
    if (!ret.dict()) return fail(unexpected_type_error("query-status"));
    StatusInfo s;
    const QValue *running = ret.get("running");
    if (!running || !running->boolean())
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "query-status reply was missing running state");
    s.running = *running->boolean();
    s.status = str_or(ret, "status");
    return s;
}

Result<std::vector<BlockInfo>> parse_block_info(const QValue &ret) {
    if (!ret.list()) return fail(unexpected_type_error("query-block"));
    std::vector<BlockInfo> out;
    for (const auto &e : *ret.list()) {
        if (!e.dict()) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "block info entry was not in expected format");
        BlockInfo b;
        b.device = str_or(e, "device");
        b.qdev = str_or(e, "qdev");
        b.removable = bool_or(e, "removable");
        b.locked = bool_or(e, "locked");
        if (const QValue *ins = e.get("inserted"); ins && ins->dict()) {
            BlockInserted i;
            i.node_name = str_or(*ins, "node-name");
            i.file = str_or(*ins, "file");
            i.drv = str_or(*ins, "drv");
            i.ro = bool_or(*ins, "ro");
            i.backing_file = opt_str(*ins, "backing_file");
            b.inserted = std::move(i);
        }
        out.push_back(std::move(b));
    }
    return out;
}

Result<std::vector<NamedBlockNode>> parse_named_block_nodes(const QValue &ret) {
    if (!ret.list()) return fail(unexpected_type_error("query-named-block-nodes"));
    std::vector<NamedBlockNode> out;
    for (const auto &e : *ret.list()) {
        if (!e.dict()) return fail(malformed("query-named-block-nodes entry"));
        NamedBlockNode n;
        n.node_name = str_or(e, "node-name");
        n.drv = str_or(e, "drv");
        n.file = str_or(e, "file");
        n.ro = bool_or(e, "ro");
        n.backing_file = opt_str(e, "backing_file");
        if (const QValue *img = e.get("image"); img && img->dict()) {
            n.virtual_size = int_or(*img, "virtual-size");
            n.actual_size = opt_int(*img, "actual-size");
            n.format = str_or(*img, "format");
            n.backing_filename = opt_str(*img, "backing-filename");
        }
        if (const QValue *bms = e.get("dirty-bitmaps"); bms && bms->list()) {
            for (const auto &b : *bms->list()) {
                if (!b.dict()) continue;
                DirtyBitmapInfo d;
                d.name = str_or(b, "name");
                d.granularity = uint64_t(int_or(b, "granularity"));
                d.count = int_or(b, "count");
                d.recording = bool_or(b, "recording");
                d.busy = bool_or(b, "busy");
                d.persistent = bool_or(b, "persistent");
                d.inconsistent = bool_or(b, "inconsistent");
                n.dirty_bitmaps.push_back(std::move(d));
            }
        }
        out.push_back(std::move(n));
    }
    return out;
}

Result<std::vector<JobInfo>> parse_jobs(const QValue &ret) {
    if (!ret.list()) return fail(unexpected_type_error("query-jobs"));
    std::vector<JobInfo> out;
    for (const auto &e : *ret.list()) {
        const std::string *id = e.dict() ? str_member(e, "id") : nullptr;
        const std::string *type = id ? str_member(e, "type") : nullptr;
        const std::string *status = type ? str_member(e, "status") : nullptr;
        if (!status) return fail(malformed("job data in reply of 'query-jobs'"));
        JobInfo j;
        j.id = *id;
        j.type = *type;
        j.status = *status;
        j.current_progress = int_or(e, "current-progress");
        j.total_progress = int_or(e, "total-progress");
        j.error = opt_str(e, "error");
        out.push_back(std::move(j));
    }
    return out;
}

Result<MigrationInfo> parse_migration_info(const QValue &ret) {
    if (!ret.dict()) return fail(unexpected_type_error("query-migrate"));
    MigrationInfo m;
    // QEMU leaves "status" out before the first migration.
    m.status = str_or(ret, "status", "none");
    if (const QValue *ram = ret.get("ram"); ram && ram->dict()) {
        MigrationRam r;
        r.transferred = int_or(*ram, "transferred");
        r.remaining = int_or(*ram, "remaining");
        r.total = int_or(*ram, "total");
        m.ram = r;
    }
    m.setup_time = opt_int(ret, "setup-time");
    m.downtime = opt_int(ret, "downtime");
    m.expected_downtime = opt_int(ret, "expected-downtime");
    m.total_time = opt_int(ret, "total-time");
    m.error_desc = opt_str(ret, "error-desc");
    return m;
}

Result<std::vector<MigrationCapability>> parse_migration_capabilities(const QValue &ret) {
    if (!ret.list()) return fail(unexpected_type_error("query-migrate-capabilities"));
    std::vector<MigrationCapability> out;
    for (const auto &e : *ret.list()) {
        const std::string *name = e.dict() ? str_member(e, "capability") : nullptr;
        if (!name) return fail(malformed("migration capabilities"));
        out.push_back({*name, bool_or(e, "state")});
    }
    return out;
}

Result<MigrationParameters> parse_migration_parameters(const QValue &ret) {
    if (!ret.dict()) return fail(unexpected_type_error("query-migrate-parameters"));
    MigrationParameters p;
    p.max_bandwidth = opt_int(ret, "max-bandwidth");
    p.downtime_limit = opt_int(ret, "downtime-limit");
    p.multifd_channels = opt_int(ret, "multifd-channels");
    if (const QValue *v = ret.get("direct-io")) p.direct_io = v->boolean();
    return p;
}

Result<AddFdInfo> parse_add_fd(const QValue &ret) {
    auto set = ret.dict() ? opt_int(ret, "fdset-id") : std::nullopt;
    auto fd = ret.dict() ? opt_int(ret, "fd") : std::nullopt;
    if (!set || !fd) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "invalid reply from 'add-fd' command");
    return AddFdInfo{*set, *fd};
}

Result<std::vector<MachineInfo>> parse_machines(const QValue &ret) {
    if (!ret.list()) return fail(unexpected_type_error("query-machines"));
    std::vector<MachineInfo> out;
    for (const auto &e : *ret.list()) {
        const std::string *name = e.dict() ? str_member(e, "name") : nullptr;
        if (!name) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "query-machines reply data was missing 'name'");
        MachineInfo m;
        m.name = *name;
        m.alias = opt_str(e, "alias");
        m.is_default = bool_or(e, "is-default");
        m.cpu_max = int_or(e, "cpu-max");
        m.deprecated = bool_or(e, "deprecated");
        out.push_back(std::move(m));
    }
    return out;
}

Result<KvmInfo> parse_kvm(const QValue &ret) {
    if (!ret.dict()) return fail(unexpected_type_error("query-kvm"));
    return KvmInfo{bool_or(ret, "enabled"), bool_or(ret, "present")};
}

Result<std::vector<std::string>> parse_commands(const QValue &ret) {
    if (!ret.list()) return fail(unexpected_type_error("query-commands"));
    std::vector<std::string> out;
    for (const auto &e : *ret.list())
        if (const std::string *n = e.dict() ? str_member(e, "name") : nullptr) out.push_back(*n);
    return out;
}

Result<std::vector<std::string>> parse_schema_names(const QValue &ret, std::string_view meta_type) {
    if (!ret.list()) return fail(unexpected_type_error("query-qmp-schema"));
    std::vector<std::string> out;
    for (const auto &e : *ret.list()) {
        if (!e.dict()) continue;
        const std::string *mt = str_member(e, "meta-type");
        const std::string *n = str_member(e, "name");
        if (mt && n && *mt == meta_type) out.push_back(*n);
    }
    return out;
}

// ---- argument builders ----

namespace {
void add_opt(QDict &d, const char *key, const std::optional<std::string> &v) {
    if (v) d.emplace_back(key, QValue(*v));
}
void add_opt(QDict &d, const char *key, const std::optional<int64_t> &v) {
    if (v) d.emplace_back(key, QValue(*v));
}
void add_job_flags(QDict &d, bool auto_finalize, bool auto_dismiss) {
    // QEMU's defaults are true for both; only the differences are sent, as libvirt does.
    if (!auto_finalize) d.emplace_back("auto-finalize", QValue(false));
    if (!auto_dismiss) d.emplace_back("auto-dismiss", QValue(false));
}
}  // namespace

QDict args_block_commit(const BlockCommitArgs &a) {
    QDict d{{"job-id", QValue(a.job_id)}, {"device", QValue(a.device)}};
    add_opt(d, "top-node", a.top_node);
    add_opt(d, "base-node", a.base_node);
    add_opt(d, "backing-file", a.backing_file);
    add_opt(d, "speed", a.speed);
    add_job_flags(d, a.auto_finalize, a.auto_dismiss);
    return d;
}

QDict args_block_stream(const BlockStreamArgs &a) {
    QDict d{{"job-id", QValue(a.job_id)}, {"device", QValue(a.device)}};
    add_opt(d, "base-node", a.base_node);
    add_opt(d, "backing-file", a.backing_file);
    add_opt(d, "speed", a.speed);
    add_job_flags(d, a.auto_finalize, a.auto_dismiss);
    return d;
}

QDict args_blockdev_mirror(const BlockdevMirrorArgs &a) {
    QDict d{{"job-id", QValue(a.job_id)},
            {"device", QValue(a.device)},
            {"target", QValue(a.target)},
            {"sync", QValue(a.sync)}};
    add_opt(d, "speed", a.speed);
    add_opt(d, "granularity", a.granularity);
    add_opt(d, "buf-size", a.buf_size);
    add_opt(d, "copy-mode", a.copy_mode);
    add_job_flags(d, a.auto_finalize, a.auto_dismiss);
    return d;
}

QDict args_snapshot_job(const SnapshotJobArgs &a, bool with_vmstate) {
    QDict d{{"job-id", QValue(a.job_id)}, {"tag", QValue(a.tag)}};
    if (with_vmstate) d.emplace_back("vmstate", QValue(a.vmstate));
    QList devs;
    for (const auto &dev : a.devices) devs.emplace_back(dev);
    d.emplace_back("devices", QValue(std::move(devs)));
    return d;
}

QDict args_nbd_server_start(const NbdServerAddress &addr) {
    QDict a{{"type", QValue(addr.type)}};
    if (addr.type == "unix") {
        a.emplace_back("path", QValue(addr.path));
    } else {
        a.emplace_back("host", QValue(addr.host));
        a.emplace_back("port", QValue(addr.port));
    }
    return QDict{{"addr", QValue(std::move(a))}};
}

// ---- guest agent ----

std::string build_agent_command(std::string_view name, const QDict &args) {
    return build_command(name, args, {}) + "\n";
}

Error agent_command_error(std::string_view command, const Message &reply) {
    std::string detail = reply.error_desc;
    if (detail.empty()) {
        // libvirt turns the class into words when QEMU gave no desc.
        static const std::pair<const char *, const char *> kClasses[] = {
            {"BufferOverrun", "Buffer overrun"},
            {"CommandDisabled", "The command has been disabled for this instance"},
            {"CommandNotFound", "The command has not been found"},
            {"FdNotFound", "File descriptor not found"},
            {"InvalidParameter", "Invalid parameter"},
            {"InvalidParameterType", "Invalid parameter type"},
            {"InvalidParameterValue", "Invalid parameter value"},
            {"OpenFileFailed", "Cannot open file"},
            {"QgaCommandFailed", "Guest agent command failed"},
            {"QMPBadInputObjectMember", "Bad QMP input object member"},
            {"QMPExtraInputObjectMember", "Unexpected extra object member"},
            {"UndefinedError", "An undefined error has occurred"},
            {"Unsupported", "this feature or command is not currently supported"},
        };
        detail = reply.error_class.empty() ? "unknown QEMU command error" : reply.error_class;
        for (const auto &[cls, text] : kClasses)
            if (reply.error_class == cls) detail = text;
    }
    return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                      "unable to execute QEMU agent command '" + std::string(command) + "': " + detail);
}

}  // namespace qmpjson

}  // namespace virtsnap::qemu

// ---- typed event data (declared in monitor.hh) ----

namespace virtsnap::qemu {

namespace {
Error malformed_event(const QmpEvent &e) {
    return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "malformed " + e.name + " event data");
}
const std::string *event_str(const QmpEvent &e, std::string_view key) {
    const QValue *v = e.data.get(key);
    return v ? v->str() : nullptr;
}
}  // namespace

Result<JobStatusChangeEvent> parse_job_status_change(const QmpEvent &event) {
    const std::string *id = event_str(event, "id");
    const std::string *status = event_str(event, "status");
    if (!id || !status) return fail(malformed_event(event));
    return JobStatusChangeEvent{*id, *status};
}

Result<BlockJobEvent> parse_block_job_event(const QmpEvent &event) {
    // BLOCK_JOB_ERROR carries no "type"; every block job event has the job id.
    const std::string *type = event_str(event, "type");
    const std::string *device = event_str(event, "device");
    if (!device) return fail(malformed_event(event));
    BlockJobEvent b;
    if (type) b.type = *type;
    b.device = *device;
    auto num = [&](const char *key) {
        const QValue *v = event.data.get(key);
        return v ? v->integer().value_or(0) : 0;
    };
    b.len = num("len");
    b.offset = num("offset");
    b.speed = num("speed");
    if (const std::string *err = event_str(event, "error")) b.error = *err;
    if (const std::string *act = event_str(event, "action")) b.action = *act;
    return b;
}

Result<MigrationEvent> parse_migration_event(const QmpEvent &event) {
    const std::string *status = event_str(event, "status");
    if (!status) return fail(malformed_event(event));
    return MigrationEvent{*status};
}

Result<ShutdownEvent> parse_shutdown_event(const QmpEvent &event) {
    ShutdownEvent s;
    if (const QValue *g = event.data.get("guest")) s.guest = g->boolean().value_or(false);
    if (const std::string *r = event_str(event, "reason")) s.reason = *r;
    return s;
}

Result<DeviceDeletedEvent> parse_device_deleted_event(const QmpEvent &event) {
    const std::string *path = event_str(event, "path");
    if (!path) return fail(malformed_event(event));
    DeviceDeletedEvent d;
    d.path = *path;
    if (const std::string *dev = event_str(event, "device")) d.device = *dev;
    return d;
}

}  // namespace virtsnap::qemu
