// qemu_img.cc - runs qemu-img and reads its JSON through QValue.
#define LOG_MODULE "qemu.qemu_img"

#include "qemu/qemu_img.hh"

#include "qemu/qcow2_overlay.hh"
#include "qemu/qvalue.hh"
#include "util/log.hh"
#include "util/process.hh"

#include <cerrno>

#include <sys/stat.h>
#include <unistd.h>

namespace virtsnap::qemu::qemu_img {

namespace {

std::string &binary() {
    static std::string b = "qemu-img";
    return b;
}

Result<std::string> qemu_img(std::vector<std::string> args) {
    args.insert(args.begin(), binary());
    process::SpawnOptions o;
    o.argv = std::move(args);
    // Stable, untranslated messages to quote in errors.
    o.env = {{"LC_ALL", "C"}};
    return process::run(std::move(o));
}

Unexpected bad_json(const std::string &what) {
    return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_STORAGE, "cannot parse qemu-img info output: " + what);
}

std::string str_member(const QValue &v, std::string_view key) {
    const QValue *m = v.get(key);
    return m && m->str() ? *m->str() : std::string();
}

int64_t int_member(const QValue &v, std::string_view key) {
    const QValue *m = v.get(key);
    auto i = m ? m->integer() : std::nullopt;
    return i.value_or(0);
}

Result<ImageInfo> parse_one(const QValue &v) {
    if (!v.dict()) return bad_json("image entry is not an object");
    ImageInfo info;
    info.filename = str_member(v, "filename");
    info.format = str_member(v, "format");
    if (info.format.empty() || !v.get("virtual-size")) return bad_json("missing format or virtual-size");
    info.virtual_size = uint64_t(int_member(v, "virtual-size"));
    if (v.get("actual-size")) info.actual_size = uint64_t(int_member(v, "actual-size"));
    if (v.get("cluster-size")) info.cluster_size = uint64_t(int_member(v, "cluster-size"));
    info.backing_filename = str_member(v, "backing-filename");
    info.full_backing_filename = str_member(v, "full-backing-filename");
    info.backing_format = str_member(v, "backing-filename-format");
    if (auto *d = v.get("dirty-flag"); d && d->boolean()) info.dirty = *d->boolean();
    if (auto *snaps = v.get("snapshots")) {
        if (!snaps->list()) return bad_json("snapshots is not a list");
        for (auto &s : *snaps->list()) {
            SnapshotInfo si;
            si.id = str_member(s, "id");
            si.name = str_member(s, "name");
            si.vm_state_size = uint64_t(int_member(s, "vm-state-size"));
            si.date_sec = int_member(s, "date-sec");
            si.date_nsec = int_member(s, "date-nsec");
            si.vm_clock_sec = int_member(s, "vm-clock-sec");
            si.vm_clock_nsec = int_member(s, "vm-clock-nsec");
            info.snapshots.push_back(std::move(si));
        }
    }
    return info;
}

std::vector<std::string> info_args(const std::string &path, const std::string &format, bool force_share) {
    std::vector<std::string> a = {"info", "--output=json"};
    if (force_share) a.push_back("-U");
    if (!format.empty()) a.insert(a.end(), {"-f", format});
    a.push_back(path);
    return a;
}

}  // namespace

void set_binary(std::string path) { binary() = std::move(path); }

Result<std::vector<ImageInfo>> parse_info_json(std::string_view json) {
    QValue v = TRY(qvalue_from_json(json));
    std::vector<ImageInfo> out;
    if (v.list()) {
        for (auto &e : *v.list()) out.push_back(TRY(parse_one(e)));
    } else {
        out.push_back(TRY(parse_one(v)));
    }
    if (out.empty()) return bad_json("no images");
    return out;
}

Result<ImageInfo> info(const std::string &path, const std::string &format, bool force_share) {
    std::string json = TRY(qemu_img(info_args(path, format, force_share)));
    auto list = TRY(parse_info_json(json));
    return std::move(list.front());
}

Result<std::vector<ImageInfo>> info_chain(const std::string &path, const std::string &format, bool force_share) {
    auto args = info_args(path, format, force_share);
    args.insert(args.begin() + 1, "--backing-chain");
    std::string json = TRY(qemu_img(std::move(args)));
    return parse_info_json(json);
}

Status create(const std::string &path, const std::string &format, uint64_t size_bytes) {
    TRY(qemu_img({"create", "-q", "-f", format, path, std::to_string(size_bytes)}));
    return ok();
}

Status create_overlay(const std::string &path, const std::string &backing, const std::string &backing_format,
                      uint64_t size_bytes) {
    // The common case without the ~6 ms of running qemu-img (qcow2_overlay.hh).
    if (auto plan = qcow2::plan_overlay(backing, backing_format, size_bytes)) return qcow2::write_overlay(path, *plan);
    std::vector<std::string> a = {"create", "-q", "-f", "qcow2", "-b", backing, "-F", backing_format, path};
    if (size_bytes) a.push_back(std::to_string(size_bytes));
    TRY(qemu_img(std::move(a)));
    return ok();
}

Status snapshot_create(const std::string &path, const std::string &name) {
    TRY(qemu_img({"snapshot", "-q", "-c", name, path}));
    return ok();
}

Status snapshot_delete(const std::string &path, const std::string &name) {
    TRY(qemu_img({"snapshot", "-q", "-d", name, path}));
    return ok();
}

Status snapshot_apply(const std::string &path, const std::string &name) {
    TRY(qemu_img({"snapshot", "-q", "-a", name, path}));
    return ok();
}

Result<std::vector<SnapshotInfo>> snapshot_list(const std::string &path) {
    return TRY(info(path, "", false)).snapshots;
}

Result<CheckResult> check(const std::string &path, const std::string &format) {
    std::vector<std::string> a = {binary(), "check", "--output=json"};
    if (!format.empty()) a.insert(a.end(), {"-f", format});
    a.push_back(path);
    process::SpawnOptions o;
    o.argv = a;
    o.env = {{"LC_ALL", "C"}};
    auto r = TRY(process::run_capture(std::move(o)));
    // Exit 2: corruptions, 3: leaks; both still print the report.
    if (!r.status.exited || (r.status.code != 0 && r.status.code != 2 && r.status.code != 3)) {
        std::string err = r.err;
        while (!err.empty() && err.back() == '\n') err.pop_back();
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE,
                    "Child process (" + process::argv_to_string(a) + ") unexpected " + r.status.describe() +
                    (err.empty() ? "" : ": " + err));
    }
    QValue v = TRY(qvalue_from_json(r.out));
    CheckResult c;
    c.format = str_member(v, "format");
    c.corruptions = uint64_t(int_member(v, "corruptions"));
    c.leaks = uint64_t(int_member(v, "leaks"));
    c.check_errors = uint64_t(int_member(v, "check-errors"));
    c.clean = c.corruptions == 0 && c.leaks == 0 && c.check_errors == 0;
    return c;
}

Status commit(const std::string &path, const std::string &format) {
    std::vector<std::string> a = {"commit", "-q"};
    if (!format.empty()) a.insert(a.end(), {"-f", format});
    a.push_back(path);
    TRY(qemu_img(std::move(a)));
    return ok();
}

Status rebase(const std::string &path, const std::string &backing, const std::string &backing_format,
              bool unsafe_) {
    std::vector<std::string> a = {"rebase", "-q", "-f", "qcow2"};
    if (unsafe_) a.push_back("-u");
    a.insert(a.end(), {"-b", backing});
    if (!backing.empty()) a.insert(a.end(), {"-F", backing_format});
    a.push_back(path);
    TRY(qemu_img(std::move(a)));
    return ok();
}

namespace {

using Type = conf::StorageSource::Type;

std::string as_user() {
    return " (as uid:" + std::to_string(::geteuid()) + ", gid:" + std::to_string(::getegid()) + ")";
}

// libvirt's virStorageSourceReportBrokenChain, for a chain qemu-img could not
// open: walks it one image at a time (info without --backing-chain opens no
// backing file) to name the image that cannot be read. Anything else keeps
// qemu-img's own error.
Error broken_chain_error(const conf::StorageSource &top, Error qemu_img_error) {
    if (::access(top.path.c_str(), R_OK) != 0)
        return make_system_error(VIR_FROM_STORAGE, errno, "Cannot access storage file '" + top.path + "'" + as_user());
    std::string path = top.path, format = top.format;
    for (int depth = 0; depth < 200; ++depth) {
        auto one = info(path, format, true);
        if (!one || one->backing_filename.empty()) break;
        std::string next = one->full_backing_filename.empty() ? one->backing_filename : one->full_backing_filename;
        if (::access(next.c_str(), R_OK) != 0)
            return make_system_error(VIR_FROM_STORAGE, errno,
                                     "Cannot access backing file '" + next + "' of storage file '" + top.path +
                                         "'" + as_user());
        path = next;
        format = one->backing_format;
    }
    return qemu_img_error;
}

Type local_type(const std::string &path) {
    struct stat sb;
    return ::stat(path.c_str(), &sb) == 0 && S_ISBLK(sb.st_mode) ? Type::Block : Type::File;
}

}  // namespace

Status fill_backing_chain(conf::StorageSource &src) {
    if (src.backing || src.backing_terminated) return ok();
    if (src.type != Type::File && src.type != Type::Block) return ok();
    auto listed = info_chain(src.path, src.format, true);
    if (!listed) return fail(broken_chain_error(src, std::move(listed).error()));
    auto chain = std::move(listed).value();
    conf::StorageSource *cur = &src;
    if (cur->format.empty()) cur->format = chain.front().format;
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
        const ImageInfo &layer = chain[i];
        std::string format = layer.backing_format;
        // qemu-img probed it; libvirt accepts a probe only when it says raw.
        if (format.empty() && chain[i + 1].format == "raw") format = "raw";
        if (format.empty())
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_STORAGE,
                        "format of backing image '" + layer.backing_filename + "' of image '" + layer.filename +
                            "' was not specified in the image metadata "
                            "(See https://libvirt.org/kbase/backing_chains.html for troubleshooting)");
        auto next = std::make_unique<conf::StorageSource>();
        next->path = chain[i + 1].filename;
        next->type = local_type(next->path);
        next->format = format;
        next->readonly = true;
        cur->backing = std::move(next);
        cur = cur->backing.get();
    }
    cur->backing_terminated = true;
    return ok();
}

Status complete_backing_chains(conf::DomainDef &def) {
    for (auto &disk : def.disks) {
        if (disk.src.empty()) continue;
        conf::StorageSource *last = &disk.src;
        while (last->backing) last = last->backing.get();
        // Raw (stated or, without a format, assumed as the command line does)
        // has no backing file; other formats are refused by the command line.
        if (last->backing_terminated || last->format != "qcow2") continue;
        TRY(fill_backing_chain(*last));
    }
    return ok();
}

}  // namespace virtsnap::qemu::qemu_img
