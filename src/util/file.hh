// file.hh - file helpers: bounded reads, atomic replace, directory creation,
// and names that can never escape their directory.
#pragma once

#include "util/result.hh"

#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::file {

// Reads a whole file, refusing files larger than max_bytes.
[[nodiscard]] Result<std::string> read(const std::string &path, size_t max_bytes,
                                       virErrorDomain domain = VIR_FROM_NONE);

// Replaces `path` atomically: writes "<path>.new" (mode), fsyncs it, renames it
// over `path`, then fsyncs the directory so the rename itself is durable.
// On failure the temporary file is removed and `path` is untouched.
[[nodiscard]] Status write_atomic(const std::string &path, std::string_view content, int mode = 0600,
                                  virErrorDomain domain = VIR_FROM_NONE);

// mkdir -p with the given mode for directories it creates.
[[nodiscard]] Status make_dirs(const std::string &path, int mode = 0755,
                               virErrorDomain domain = VIR_FROM_NONE);

// Removes a file; a missing file is not an error.
[[nodiscard]] Status remove(const std::string &path, virErrorDomain domain = VIR_FROM_NONE);

// fsyncs a directory (after creating or removing entries in it).
[[nodiscard]] Status sync_dir(const std::string &dir, virErrorDomain domain = VIR_FROM_NONE);

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
