// domain_config_store.cc - domain config files, their warning header, autostart links.

#include "conf/domain_config_store.hh"
#include "util/xml_file_warning.hh"

#include "util/file.hh"
#include "util/log.hh"

#include <cerrno>

#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "conf.domain_config_store"

namespace virtsnap {

namespace {

constexpr virErrorDomain kDomain = VIR_FROM_QEMU;

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Status DomainConfigStore::save(std::string_view name, std::string_view xml, std::string_view uuid) const {
    std::string path = TRY(file::child_path(config_dir_, name, ".xml", kDomain));
    TRY(file::make_dirs(config_dir_, 0755, kDomain));
    std::string text = xml::file_warning("edit", name, uuid);
    text += xml;
    return file::write_atomic(path, text, 0600, kDomain);
}

Result<std::string> DomainConfigStore::load(std::string_view name) const {
    std::string path = TRY(file::child_path(config_dir_, name, ".xml", kDomain));
    return file::read(path, kMaxFileBytes, kDomain);
}

Status DomainConfigStore::remove(std::string_view name) const {
    std::string path = TRY(file::child_path(config_dir_, name, ".xml", kDomain));
    std::string link = TRY(file::child_path(autostart_dir_, name, ".xml", kDomain));
    TRY(file::remove(link, kDomain));
    TRY(file::remove(path, kDomain));
    if (!file::exists(config_dir_)) return ok();
    return file::sync_dir(config_dir_, kDomain);
}

bool DomainConfigStore::exists(std::string_view name) const {
    auto path = file::child_path(config_dir_, name, ".xml", kDomain);
    return path && file::exists(*path);
}

Result<std::vector<std::string>> DomainConfigStore::list_names() const {
    std::vector<std::string> entries = TRY(file::list_dir(config_dir_, kDomain));
    std::vector<std::string> names;
    for (const std::string &e : entries) {
        // libvirt only considers "*.xml"; the autostart directory is skipped by that too.
        if (!ends_with(e, ".xml") || e.size() == 4) continue;
        names.push_back(e.substr(0, e.size() - 4));
    }
    return names;
}

Result<DomainConfigLoadReport> DomainConfigStore::load_all(const ParseFn &parse) const {
    DomainConfigLoadReport report;
    std::vector<std::string> names = TRY(list_names());
    for (const std::string &name : names) {
        std::string path = config_dir_ + "/" + name + ".xml";
        auto text = file::read(path, kMaxFileBytes, kDomain);
        if (!text) {
            VS_ERROR("Failed to load config for domain '%s': %s", name.c_str(), text.error().message().c_str());
            report.skipped.push_back({std::move(path), std::move(text).error()});
            continue;
        }
        Status st = parse(path, *text);
        if (!st) {
            VS_ERROR("Failed to load config for domain '%s': %s", name.c_str(), st.error().message().c_str());
            report.skipped.push_back({std::move(path), std::move(st).error()});
            continue;
        }
        report.loaded.push_back(name);
    }
    return report;
}

Status DomainConfigStore::set_autostart(std::string_view name, bool enabled) const {
    std::string config = TRY(file::child_path(config_dir_, name, ".xml", kDomain));
    std::string link = TRY(file::child_path(autostart_dir_, name, ".xml", kDomain));
    if (!enabled) {
        if (::unlink(link.c_str()) < 0 && errno != ENOENT && errno != ENOTDIR)
            return fail(make_system_error(kDomain, errno, "Failed to delete symlink '" + link + "'"));
        return ok();
    }
    if (autostart(name)) return ok();
    TRY(file::make_dirs(autostart_dir_, 0755, kDomain));
    // A stale link (pointing elsewhere) is replaced.
    if (::unlink(link.c_str()) < 0 && errno != ENOENT)
        return fail(make_system_error(kDomain, errno, "Failed to delete symlink '" + link + "'"));
    if (::symlink(config.c_str(), link.c_str()) < 0)
        return fail(make_system_error(kDomain, errno,
                                      "Failed to create symlink '" + link + "' to '" + config + "'"));
    return file::sync_dir(autostart_dir_, kDomain);
}

bool DomainConfigStore::autostart(std::string_view name) const {
    auto config = file::child_path(config_dir_, name, ".xml", kDomain);
    auto link = file::child_path(autostart_dir_, name, ".xml", kDomain);
    if (!config || !link) return false;
    struct stat a, b;
    if (::stat(link->c_str(), &a) < 0 || ::stat(config->c_str(), &b) < 0) return false;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<std::vector<std::string>> DomainConfigStore::autostart_names() const {
    std::vector<std::string> entries = TRY(file::list_dir(autostart_dir_, kDomain));
    std::vector<std::string> names;
    for (const std::string &e : entries) {
        if (!ends_with(e, ".xml") || e.size() == 4) continue;
        std::string name = e.substr(0, e.size() - 4);
        if (autostart(name)) names.push_back(std::move(name));
    }
    return names;
}

}  // namespace virtsnap
