// file.cc - POSIX file helpers with libvirt-style system errors.

#include "util/file.hh"

#include "util/deferred_sync.hh"
#include "util/raii.hh"

#include <algorithm>
#include <cerrno>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace virtsnap::file {

namespace {

FileStamp stamp_from(const struct stat &sb) {
    FileStamp s;
    s.dev = uint64_t(sb.st_dev);
    s.ino = uint64_t(sb.st_ino);
    s.size = uint64_t(sb.st_size);
    s.mtime_ns = int64_t(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
    s.ctime_ns = int64_t(sb.st_ctim.tv_sec) * 1000000000 + sb.st_ctim.tv_nsec;
    return s;
}

bool deferred(Durability d) { return d == Durability::Deferred && !DeferredSync::instance().immediate(); }

}  // namespace

Result<std::string> read(const std::string &path, size_t max_bytes, virErrorDomain domain) {
    FileStamp ignored;
    return read(path, max_bytes, ignored, domain);
}

Result<FileStamp> stamp_of(const std::string &path, virErrorDomain domain) {
    struct stat sb;
    if (::stat(path.c_str(), &sb) < 0) return fail(make_system_error(domain, errno, "cannot stat file '" + path + "'"));
    return stamp_from(sb);
}

Result<std::string> read(const std::string &path, size_t max_bytes, FileStamp &stamp, virErrorDomain domain) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return fail(make_system_error(domain, errno, "Failed to open file '" + path + "'"));
    struct stat sb;
    if (::fstat(fd.get(), &sb) < 0) return fail(make_system_error(domain, errno, "cannot stat file '" + path + "'"));
    stamp = stamp_from(sb);
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(make_system_error(domain, errno, "Failed to read file '" + path + "'"));
        }
        if (n == 0) break;
        if (out.size() + size_t(n) > max_bytes)
            return fail(VIR_ERR_INTERNAL_ERROR, domain,
                        "file '" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
        out.append(buf, size_t(n));
    }
    return out;
}

Status sync_dir(const std::string &dir, virErrorDomain domain) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return fail(make_system_error(domain, errno, "cannot open directory '" + dir + "'"));
    if (::fsync(fd.get()) < 0) return fail(make_system_error(domain, errno, "cannot sync directory '" + dir + "'"));
    return ok();
}

Status settle_dir(const std::string &dir, Durability durability, virErrorDomain domain) {
    if (!deferred(durability)) return sync_dir(dir, domain);
    DeferredSync::instance().note(dir);
    return ok();
}

int pwrite_all(int fd, std::string_view data, uint64_t offset) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, off_t(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return ENOSPC;
        done += size_t(n);
    }
    return 0;
}

Status write_atomic(const std::string &path, std::string_view content, int mode, virErrorDomain domain,
                    Durability durability) {
    const bool later = deferred(durability);
    std::string tmp = path + ".new";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd.valid()) return fail(make_system_error(domain, errno, "cannot create file '" + tmp + "'"));
    ScopeExit drop_tmp([&] { ::unlink(tmp.c_str()); });
    if (int err = pwrite_all(fd.get(), content, 0))
        return fail(make_system_error(domain, err, "cannot write data to file '" + tmp + "'"));
    if (!later && ::fsync(fd.get()) < 0)
        return fail(make_system_error(domain, errno, "cannot sync file '" + tmp + "'"));
    if (::close(fd.release()) < 0) return fail(make_system_error(domain, errno, "cannot save file '" + tmp + "'"));
    if (::rename(tmp.c_str(), path.c_str()) < 0)
        return fail(make_system_error(domain, errno, "cannot rename file '" + tmp + "' as '" + path + "'"));
    drop_tmp.release();
    return settle_dir(dirname(path), durability, domain);
}

Status make_dirs(const std::string &path, int mode, virErrorDomain domain) {
    if (path.empty()) return ok();
    struct stat existing;
    if (::stat(path.c_str(), &existing) == 0 && S_ISDIR(existing.st_mode)) return ok();
    std::string partial;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        partial = path.substr(0, pos);
        if (partial.empty()) continue;
        if (::mkdir(partial.c_str(), mode_t(mode)) < 0 && errno != EEXIST)
            return fail(make_system_error(domain, errno, "cannot create directory '" + partial + "'"));
    }
    struct stat st;
    if (::stat(path.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
        return fail(make_system_error(domain, ENOTDIR, "cannot create directory '" + path + "'"));
    return ok();
}

Status remove(const std::string &path, virErrorDomain domain) {
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        return fail(make_system_error(domain, errno, "cannot remove file '" + path + "'"));
    return ok();
}

bool exists(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

Result<std::vector<std::string>> list_dir(const std::string &dir, virErrorDomain domain) {
    std::vector<std::string> names;
    std::unique_ptr<DIR, CFree<closedir>> d(::opendir(dir.c_str()));
    if (!d) {
        if (errno == ENOENT) return names;
        return fail(make_system_error(domain, errno, "cannot open directory '" + dir + "'"));
    }
    while (struct dirent *e = ::readdir(d.get())) {
        std::string_view n(e->d_name);
        if (n == "." || n == "..") continue;
        names.emplace_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
}

bool is_safe_component(std::string_view name) {
    if (name.empty() || name == "." || name == "..") return false;
    return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

Result<std::string> child_path(const std::string &dir, std::string_view name, std::string_view suffix,
                               virErrorDomain domain) {
    if (!is_safe_component(name))
        return fail(VIR_ERR_INVALID_ARG, domain, "name '" + std::string(name) + "' cannot be used as a file name");
    std::string out = dir;
    out += '/';
    out += name;
    out += suffix;
    return out;
}

std::string dirname(const std::string &path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string basename(const std::string &path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace virtsnap::file
