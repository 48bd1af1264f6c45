// daemon_config.cc - parser for virtsnapd.conf.

#include "daemon/daemon_config.hh"

#include "util/file.hh"

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <map>

#include <sys/stat.h>

namespace virtsnap::daemon {

namespace {

struct Value {
    bool is_string = false;
    std::string text;
    long long number = 0;
};

Error syntax_error(std::string_view what, int line, const std::string &msg) {
    return make_error(VIR_ERR_CONF_SYNTAX, VIR_FROM_CONF, std::string(what) + ":" + std::to_string(line) + ": " + msg);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

}  // namespace

Result<DaemonConfig> DaemonConfig::parse(std::string_view text, std::string_view what) {
    DaemonConfig c;
    using Setter = std::function<Status(const Value &, int)>;
    auto str = [&](std::string &dst) -> Setter {
        return [&dst, what](const Value &v, int line) -> Status {
            if (!v.is_string) return fail(syntax_error(what, line, "expected a string value"));
            dst = v.text;
            return ok();
        };
    };
    auto num = [&](auto &dst, long long lo, long long hi) -> Setter {
        return [&dst, lo, hi, what](const Value &v, int line) -> Status {
            if (v.is_string) return fail(syntax_error(what, line, "expected a number"));
            if (v.number < lo || v.number > hi) return fail(syntax_error(what, line, "value out of range"));
            dst = static_cast<std::remove_reference_t<decltype(dst)>>(v.number);
            return ok();
        };
    };
    auto perms = [&](mode_t &dst) -> Setter {
        return [&dst, what](const Value &v, int line) -> Status {
            // libvirt writes permissions as a string: unix_sock_rw_perms = "0770"
            std::string t = v.is_string ? v.text : std::to_string(v.number);
            char *end = nullptr;
            long m = std::strtol(t.c_str(), &end, 8);
            if (t.empty() || *end || m < 0 || m > 0777)
                return fail(syntax_error(what, line, "invalid permissions '" + t + "'"));
            dst = mode_t(m);
            return ok();
        };
    };
    const std::map<std::string, Setter, std::less<>> keys = {
        {"unix_sock_rw_perms", perms(c.unix_sock_rw_perms)},
        {"unix_sock_ro_perms", perms(c.unix_sock_ro_perms)},
        {"unix_sock_group", str(c.unix_sock_group)},
        {"log_level", num(c.log_level, 1, 4)},
        {"log_filters", str(c.log_filters)},
        {"log_outputs", str(c.log_outputs)},
        {"max_workers", num(c.max_workers, 1, 1024)},
        {"prio_workers", num(c.prio_workers, 0, 1024)},
        {"keepalive_interval", num(c.keepalive_interval, -1, 3600)},
        {"keepalive_count", num(c.keepalive_count, 0, 1000)},
        {"snapshot_live_method", str(c.snapshot_live_method)},
        {"snapshot_image_format", str(c.snapshot_image_format)},
        {"save_image_format", str(c.save_image_format)},
        {"memory_image_channels", num(c.memory_image_channels, 0, 64)},
        {"memory_image_direct_io", str(c.memory_image_direct_io)},
        {"hugetlbfs_mount", str(c.hugetlbfs_mount)},
        {"qemu_binary", str(c.qemu_binary)},
        {"qemu_img_binary", str(c.qemu_img_binary)},
    };

    int line_no = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        ++line_no;
        // A '#' outside double quotes starts a comment.
        bool quoted = false;
        for (size_t i = 0; i < line.size(); ++i) {
            if (line[i] == '"') quoted = !quoted;
            else if (line[i] == '#' && !quoted) {
                line = line.substr(0, i);
                break;
            }
        }
        line = trim(line);
        if (line.empty()) continue;
        size_t eq = line.find('=');
        if (eq == std::string_view::npos) return fail(syntax_error(what, line_no, "expecting '='"));
        std::string key(trim(line.substr(0, eq)));
        std::string_view raw = trim(line.substr(eq + 1));
        Value v;
        if (!raw.empty() && raw.front() == '"') {
            if (raw.size() < 2 || raw.back() != '"')
                return fail(syntax_error(what, line_no, "unterminated string"));
            v.is_string = true;
            v.text = std::string(raw.substr(1, raw.size() - 2));
        } else {
            std::string t(raw);
            char *end = nullptr;
            errno = 0;
            v.number = std::strtoll(t.c_str(), &end, 0);
            if (t.empty() || *end || errno) return fail(syntax_error(what, line_no, "invalid value '" + t + "'"));
        }
        auto it = keys.find(key);
        if (it == keys.end()) return fail(syntax_error(what, line_no, "unknown setting '" + key + "'"));
        TRY(it->second(v, line_no));
    }
    if (c.snapshot_live_method != "instant" && c.snapshot_live_method != "precopy")
        return fail(make_error(VIR_ERR_CONF_SYNTAX, VIR_FROM_CONF,
                               std::string(what) + ": snapshot_live_method must be \"instant\" or \"precopy\""));
    if (c.memory_image_direct_io != "auto" && c.memory_image_direct_io != "always" &&
        c.memory_image_direct_io != "never")
        return fail(make_error(VIR_ERR_CONF_SYNTAX, VIR_FROM_CONF,
                               std::string(what) + ": memory_image_direct_io must be \"auto\", \"always\" or \"never\""));
    for (const auto &[key, value] : {std::pair{"snapshot_image_format", &c.snapshot_image_format},
                                     std::pair{"save_image_format", &c.save_image_format}})
        if (*value != "raw" && *value != "sparse")
            return fail(make_error(VIR_ERR_CONF_SYNTAX, VIR_FROM_CONF,
                                   std::string(what) + ": " + key + " '" + *value +
                                       "' is not supported: virtsnapd writes \"raw\" or \"sparse\" images"));
    return c;
}

Result<DaemonConfig> DaemonConfig::load(const std::string &path) {
    if (!file::exists(path)) return DaemonConfig{};
    std::string text = TRY(file::read(path, 1 << 20, VIR_FROM_CONF));
    return parse(text, path);
}

}  // namespace virtsnap::daemon
