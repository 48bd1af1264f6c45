// file.hh - file helpers: bounded reads, atomic replace, directory creation,
// and names that can never escape their directory.
#pragma once

#include "util/result.hh"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::file {

// When a write or removal must be on disk: before the call returns
// (Immediate), or within a moment through DeferredSync (util/deferred_sync.hh;
// atomic at once either way). DeferredSync's immediate mode turns Deferred
// into Immediate.
enum class Durability { Immediate, Deferred };

// What identifies one version of a file: a rename gives a new inode, any
// change of content or metadata a new ctime, and ctime cannot be set back.
struct FileStamp {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileStamp &) const = default;
};

// Reads a whole file, refusing files larger than max_bytes.
[[nodiscard]] Result<std::string> read(const std::string &path, size_t max_bytes,
                                       virErrorDomain domain = VIR_FROM_NONE);
// The same, with the stamp of the version read (fstat of the open file).
[[nodiscard]] Result<std::string> read(const std::string &path, size_t max_bytes, FileStamp &stamp,
                                       virErrorDomain domain = VIR_FROM_NONE);
// The stamp of `path` now (stat, following symlinks).
[[nodiscard]] Result<FileStamp> stamp_of(const std::string &path, virErrorDomain domain = VIR_FROM_NONE);

// Replaces `path` atomically: writes "<path>.new" (mode), renames it over
// `path`. Immediate: the temporary is fsynced before the rename and the
// directory after it, so the new version is durable when this returns.
// On failure the temporary file is removed and `path` is untouched.
[[nodiscard]] Status write_atomic(const std::string &path, std::string_view content, int mode = 0600,
                                  virErrorDomain domain = VIR_FROM_NONE,
                                  Durability durability = Durability::Immediate);

// Writes all of `data` at `offset` with pwrite, retried after EINTR and
// short writes. Returns 0, or the errno of the failing write (ENOSPC when
// the kernel wrote nothing).
int pwrite_all(int fd, std::string_view data, uint64_t offset);

// mkdir -p with the given mode for directories it creates.
[[nodiscard]] Status make_dirs(const std::string &path, int mode = 0755,
                               virErrorDomain domain = VIR_FROM_NONE);

// Removes a file; a missing file is not an error.
[[nodiscard]] Status remove(const std::string &path, virErrorDomain domain = VIR_FROM_NONE);

// fsyncs a directory (after creating or removing entries in it).
[[nodiscard]] Status sync_dir(const std::string &dir, virErrorDomain domain = VIR_FROM_NONE);
// sync_dir, or a note to DeferredSync for Deferred.
[[nodiscard]] Status settle_dir(const std::string &dir, Durability durability,
                                virErrorDomain domain = VIR_FROM_NONE);

bool exists(const std::string &path);

// Names of the entries of a directory (no "." or ".."), sorted; missing dir -> empty.
[[nodiscard]] Result<std::vector<std::string>> list_dir(const std::string &dir,
                                                        virErrorDomain domain = VIR_FROM_NONE);

// True when `name` can be used as one path component: not empty, not "." or
// "..", no '/', no NUL. Such a name can never point outside its directory.
bool is_safe_component(std::string_view name);

// dir + "/" + name + suffix, refusing names that are not safe components.
[[nodiscard]] Result<std::string> child_path(const std::string &dir, std::string_view name,
                                             std::string_view suffix, virErrorDomain domain);

std::string dirname(const std::string &path);
std::string basename(const std::string &path);

}  // namespace virtsnap::file
