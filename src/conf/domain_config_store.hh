// domain_config_store.hh - persistent domain configs and autostart marks.
//
// `<config dir>/<name>.xml` per persistent domain, each starting with libvirt's
// auto-generated-file warning, and `<config dir>/autostart/<name>.xml` as a
// symlink to it for autostarted domains, exactly as libvirt's QEMU driver keeps
// /etc/libvirt/qemu. A corrupt config is logged and skipped; the rest loads.
// The store does not know the domain XML: callers pass a parse callback.
#pragma once

#include "conf/moment_store.hh"
#include "conf/state_layout.hh"
#include "util/result.hh"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap {


struct DomainConfigLoadReport {
    std::vector<std::string> loaded;  // domain names, in file-name order
    std::vector<SkippedFile> skipped;
};

class DomainConfigStore {
public:
    // Largest config read (libvirt's virDomainDefParseFile limit is much larger
    // in practice; configs are small, so 10 MiB is ample).
    static constexpr size_t kMaxFileBytes = 10 * 1024 * 1024;

    explicit DomainConfigStore(const StateLayout &layout)
        : config_dir_(layout.config_dir()), autostart_dir_(layout.autostart_dir()) {}

    const std::string &dir() const { return config_dir_; }

    // Writes `<name>.xml` atomically: the warning comment (naming `virsh edit
    // <name>`, or <uuid> when the name is not shell-safe), then `xml`.
    [[nodiscard]] Status save(std::string_view name, std::string_view xml, std::string_view uuid = {}) const;
    // Reads `<name>.xml` as stored (comment included; XML parsers skip it).
    [[nodiscard]] Result<std::string> load(std::string_view name) const;
    // Removes the config and its autostart link; missing files are fine.
    [[nodiscard]] Status remove(std::string_view name) const;
    bool exists(std::string_view name) const;
    // Names of the domains with a `<name>.xml` file, sorted.
    [[nodiscard]] Result<std::vector<std::string>> list_names() const;

    // Parses every `*.xml` config; a file that fails to read or parse is logged
    // and reported, and the rest loads. `parse` gets the path and the text.
    using ParseFn = std::function<Status(const std::string &path, std::string_view text)>;
    [[nodiscard]] Result<DomainConfigLoadReport> load_all(const ParseFn &parse) const;

    // Autostart: a symlink autostart/<name>.xml -> <absolute config path>, as
    // libvirt makes it; any link resolving to the config file counts
    // (virFileLinkPointsTo compares the files, not the link text).
    [[nodiscard]] Status set_autostart(std::string_view name, bool enabled) const;
    bool autostart(std::string_view name) const;
    [[nodiscard]] Result<std::vector<std::string>> autostart_names() const;

private:
    std::string config_dir_;
    std::string autostart_dir_;
};

}  // namespace virtsnap
