// moment_store.hh - the metadata files of one domain's snapshots (or checkpoints).
//
// One directory per domain and kind, one `<name>.xml` per moment, as libvirt's
// qemuDomainSnapshotWriteMetadata / qemuDomainSnapshotLoad. Differences from
// libvirt, all on the safe side: writes also fsync the directory, our own
// `*.new` temporaries left by a crash are ignored (libvirt loads them as
// duplicates), and directory order is sorted, so "the last current read wins"
// is deterministic.
//
// Loading never fails because of one bad file: a file that cannot be read
// (missing permission, larger than 1 MiB, a directory) or parsed is logged with
// libvirt's wording and reported in LoadReport::skipped; the rest loads.
// The store does not know the XML: callers pass a parse callback.
#pragma once

#include "conf/moment_tree.hh"
#include "conf/state_layout.hh"
#include "util/file.hh"
#include "util/log.hh"
#include "util/result.hh"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap {

// What a parse callback learns from one file.
struct MomentFileInfo {
    std::string name;         // from the XML, not from the file name
    std::string parent;       // "" for a root
    bool claims_current = false;  // <active>1</active>
};

struct SkippedFile {
    std::string path;
    Error error;
};

struct MomentLoadReport {
    std::vector<MomentFileInfo> loaded;           // in read order
    std::vector<SkippedFile> skipped;
    std::vector<std::string> ignored_temporaries;  // "*.new" paths
    std::optional<std::string> current;            // the last file read claiming current
    size_t current_claims = 0;
    bool inconsistent_relations = false;           // set by load_into
    std::vector<std::string> orphaned;             // moments made roots by load_into
};

class MomentStore {
public:
    // Largest metadata file read, as libvirt's virFileReadAll limit.
    static constexpr size_t kMaxFileBytes = 1024 * 1024;

    [[nodiscard]] static Result<MomentStore> open(const StateLayout &layout, MomentKind kind,
                                                  std::string_view domain);

    MomentKind kind() const { return kind_; }
    const std::string &domain() const { return domain_; }
    const std::string &dir() const { return dir_; }
    // libvirt's error domain for this kind (VIR_FROM_DOMAIN_SNAPSHOT / _CHECKPOINT).
    virErrorDomain error_domain() const;
    [[nodiscard]] Result<std::string> path_for(std::string_view name) const;

    // Writes `<name>.xml` atomically (temporary, rename), creating the
    // directory first; Immediate also fsyncs the file and the directory.
    // `stamp`, when given, receives the stamp of the new file.
    [[nodiscard]] Status save(std::string_view name, std::string_view text,
                              file::Durability durability = file::Durability::Immediate,
                              file::FileStamp *stamp = nullptr) const;
    // Removes `<name>.xml` and settles the directory; a missing file is fine.
    [[nodiscard]] Status remove(std::string_view name,
                                file::Durability durability = file::Durability::Immediate) const;
    // Removes every file and the directory itself (undefine with
    // --snapshots-metadata / --checkpoints-metadata). Keeps going after a
    // failure and returns the first error.
    [[nodiscard]] Status remove_all() const;
    // Moves the whole directory to the one of `new_domain` (domain rename).
    // Refuses when the target exists; a missing source directory is fine.
    [[nodiscard]] Status rename_domain(const StateLayout &layout, std::string_view new_domain);

    // Reads every file of the directory (sorted by file name) and hands its
    // text to `parse`. A parse error (or an error `parse` returns for any other
    // reason, e.g. a duplicate name) skips the file. A missing directory loads
    // nothing. Fails only when the directory itself cannot be listed.
    using ParseFn = std::function<Result<MomentFileInfo>(const std::string &path, std::string_view text)>;
    [[nodiscard]] Result<MomentLoadReport> load_all(const ParseFn &parse) const;

    // load_all for a caller that caches what it learnt from each file
    // version: `known` is asked first with the entry's stamp (one stat, no
    // read) and answers as `parse` would when it knows that exact version,
    // std::nullopt otherwise; then the file is read and `parse` gets its text
    // and the stamp of what was read.
    struct CachedLoader {
        std::function<std::optional<Result<MomentFileInfo>>(const std::string &entry, const file::FileStamp &stamp)>
            known;
        std::function<Result<MomentFileInfo>(const std::string &path, std::string_view text,
                                             const file::FileStamp &stamp)>
            parse;
    };
    [[nodiscard]] Result<MomentLoadReport> load_all(const CachedLoader &loader) const;

    // load_all into a tree: each parsed payload is added (duplicates skipped),
    // current is set from the files, then relations are rebuilt, which resets
    // current when a parent is missing or a cycle was broken.
    template <typename Payload>
    struct Parsed {
        MomentFileInfo info;
        Payload payload;
    };
    template <typename Payload>
    using TreeParseFn = std::function<Result<Parsed<Payload>>(const std::string &path, std::string_view text)>;
    template <typename Payload>
    [[nodiscard]] Result<MomentLoadReport> load_into(MomentTree<Payload> &tree,
                                                     const TreeParseFn<Payload> &parse) const {
        auto parse_and_add = [&](const std::string &path, std::string_view text) -> Result<MomentFileInfo> {
            Parsed<Payload> parsed = TRY(parse(path, text));
            TRY(tree.add_unlinked(parsed.info.name, parsed.info.parent, std::move(parsed.payload)));
            return std::move(parsed.info);
        };
        MomentLoadReport report = TRY(load_all(parse_and_add));
        if (report.current && kind_ == MomentKind::Snapshot) tree.set_current(tree.find(*report.current));
        finish_load(tree, report);
        return report;
    }

private:
    MomentStore(MomentKind kind, std::string domain, std::string dir)
        : kind_(kind), domain_(std::move(domain)), dir_(std::move(dir)) {}
    // Rebuilds relations and logs inconsistencies, as qemuDomainSnapshotLoad.
    void finish_load(MomentTreeCore &tree, MomentLoadReport &report) const;

    MomentKind kind_;
    std::string domain_;
    std::string dir_;
};

}  // namespace virtsnap
