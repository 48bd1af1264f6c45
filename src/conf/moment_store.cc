// moment_store.cc - atomic per-moment metadata files and the tolerant bulk load.

#include "conf/moment_store.hh"

#include "util/file.hh"

#include <cerrno>
#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

#define LOG_MODULE "conf.moment_store"

namespace virtsnap {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Result<MomentStore> MomentStore::open(const StateLayout &layout, MomentKind kind, std::string_view domain) {
    std::string dir = TRY(layout.moment_dir(kind, domain));
    return MomentStore(kind, std::string(domain), std::move(dir));
}

virErrorDomain MomentStore::error_domain() const {
    return kind_ == MomentKind::Snapshot ? VIR_FROM_DOMAIN_SNAPSHOT : VIR_FROM_DOMAIN_CHECKPOINT;
}

Result<std::string> MomentStore::path_for(std::string_view name) const {
    return file::child_path(dir_, name, ".xml", error_domain());
}

Status MomentStore::save(std::string_view name, std::string_view text, file::Durability durability,
                         file::FileStamp *stamp) const {
    std::string path = TRY(path_for(name));
    TRY(file::make_dirs(dir_, 0755, error_domain()));
    TRY(file::write_atomic(path, text, 0600, error_domain(), durability));
    if (stamp) *stamp = TRY(file::stamp_of(path, error_domain()));
    return ok();
}

Status MomentStore::remove(std::string_view name, file::Durability durability) const {
    std::string path = TRY(path_for(name));
    TRY(file::remove(path, error_domain()));
    if (!file::exists(dir_)) return ok();
    return file::settle_dir(dir_, durability, error_domain());
}

Status MomentStore::remove_all() const {
    if (!file::exists(dir_)) return ok();
    std::vector<std::string> names = TRY(file::list_dir(dir_, error_domain()));
    Status first = ok();
    for (const std::string &name : names) {
        Status st = file::remove(dir_ + "/" + name, error_domain());
        if (!st && first) first = std::move(st);
    }
    if (::rmdir(dir_.c_str()) < 0 && errno != ENOENT) {
        Error e = make_system_error(error_domain(), errno, "cannot remove directory '" + dir_ + "'");
        VS_WARN("%s", e.message().c_str());
        if (first) first = fail(std::move(e));
    }
    Status synced = file::sync_dir(file::dirname(dir_), error_domain());
    if (!synced && first) first = std::move(synced);
    return first;
}

Status MomentStore::rename_domain(const StateLayout &layout, std::string_view new_domain) {
    std::string new_dir = TRY(layout.moment_dir(kind_, new_domain));
    if (new_dir == dir_) return ok();
    if (file::exists(dir_)) {
        TRY(file::make_dirs(file::dirname(new_dir), 0755, error_domain()));
        // RENAME_NOREPLACE: never merge into (or clobber) another domain's moments.
        if (::renameat2(AT_FDCWD, dir_.c_str(), AT_FDCWD, new_dir.c_str(), RENAME_NOREPLACE) < 0)
            return fail(make_system_error(error_domain(), errno,
                                          "cannot rename directory '" + dir_ + "' as '" + new_dir + "'"));
        TRY(file::sync_dir(file::dirname(new_dir), error_domain()));
        if (file::dirname(new_dir) != file::dirname(dir_)) TRY(file::sync_dir(file::dirname(dir_), error_domain()));
    }
    dir_ = std::move(new_dir);
    domain_ = std::string(new_domain);
    return ok();
}

Result<MomentLoadReport> MomentStore::load_all(const ParseFn &parse) const {
    CachedLoader loader;
    loader.parse = [&](const std::string &path, std::string_view text, const file::FileStamp &) {
        return parse(path, text);
    };
    return load_all(loader);
}

Result<MomentLoadReport> MomentStore::load_all(const CachedLoader &loader) const {
    const bool snapshot = kind_ == MomentKind::Snapshot;
    const char *what = snapshot ? "snapshot" : "checkpoint";
    MomentLoadReport report;
    // One sorted listing, then per file one stat when a cache may know it,
    // else one open/fstat/read/close: no fsync.
    std::vector<std::string> names = TRY(file::list_dir(dir_, error_domain()));
    report.loaded.reserve(names.size());
    for (const std::string &entry : names) {
        std::string path = dir_ + "/" + entry;
        if (ends_with(entry, ".new")) {
            // An interrupted write_atomic: the rename never happened, so the
            // change never committed. libvirt would load it as a duplicate.
            VS_WARN("Ignoring unfinished %s file %s", what, path.c_str());
            report.ignored_temporaries.push_back(std::move(path));
            continue;
        }
        std::optional<Result<MomentFileInfo>> outcome;
        if (loader.known) {
            if (auto stamp = file::stamp_of(path, error_domain())) outcome = loader.known(entry, *stamp);
        }
        if (!outcome) {
            file::FileStamp stamp;
            auto text = file::read(path, kMaxFileBytes, stamp, error_domain());
            if (!text) {
                VS_ERROR("Failed to read %s file %s: %s", what, path.c_str(), text.error().message().c_str());
                report.skipped.push_back({std::move(path), std::move(text).error()});
                continue;
            }
            outcome = loader.parse(path, *text, stamp);
        }
        if (!*outcome) {
            VS_ERROR("Failed to parse %s XML from file '%s': %s", what, path.c_str(),
                     outcome->error().message().c_str());
            report.skipped.push_back({std::move(path), std::move(*outcome).error()});
            continue;
        }
        MomentFileInfo *info = &**outcome;
        if (info->claims_current) {
            if (report.current)
                VS_ERROR("Too many %ss claiming to be current for domain %s", what, domain_.c_str());
            report.current = info->name;  // libvirt: the last one read wins
            report.current_claims++;
        }
        report.loaded.push_back(std::move(*info));
    }
    return report;
}

void MomentStore::finish_load(MomentTreeCore &tree, MomentLoadReport &report) const {
    const bool snapshot = kind_ == MomentKind::Snapshot;
    if (!snapshot) tree.clear_current();
    bool consistent = tree.rebuild_relations();
    if (!consistent) {
        report.inconsistent_relations = true;
        VS_ERROR("%s have inconsistent relations for domain %s", snapshot ? "Snapshots" : "Checkpoints",
                 domain_.c_str());
    }
    for (MomentId id : tree.orphaned()) report.orphaned.push_back(tree.name(id));
    // Checkpoint files carry no "current" mark: libvirt takes the end of the
    // chain when the checkpoints form exactly one chain.
    if (!snapshot && consistent) tree.set_current(tree.single_chain_leaf());
}

}  // namespace virtsnap
