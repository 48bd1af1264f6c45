// log.cc - the logging sink and filter table.

#include "util/log.hh"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <sstream>
#include <vector>

#include <sys/time.h>
#include <unistd.h>

namespace virtsnap::log {

namespace {

struct Filter {
    std::string prefix;
    int level;
};

struct Config {
    std::mutex mu;
    int default_level = 3;
    std::vector<Filter> filters;
    FILE *out = stderr;
    bool configured = false;
};

Config &config() {
    static Config c;
    return c;
}

void apply(Config &c, int default_level, std::string_view filters, std::string_view output) {
    c.default_level = default_level;
    c.filters.clear();
    std::istringstream in{std::string(filters)};
    std::string item;
    while (in >> item) {
        auto colon = item.find(':');
        if (colon == std::string::npos) continue;
        int lvl = std::atoi(item.substr(0, colon).c_str());
        if (lvl < 1 || lvl > 4) continue;
        c.filters.push_back({item.substr(colon + 1), lvl});
    }
    if (c.out != stderr && c.out) std::fclose(c.out);
    c.out = stderr;
    if (!output.empty()) {
        if (FILE *f = std::fopen(std::string(output).c_str(), "ae")) c.out = f;
    }
    c.configured = true;
}

void ensure_configured(Config &c) {
    if (c.configured) return;
    const char *lvl = std::getenv("VIRTSNAP_LOG_LEVEL");
    const char *flt = std::getenv("VIRTSNAP_LOG_FILTERS");
    const char *out = std::getenv("VIRTSNAP_LOG_OUTPUT");
    int l = lvl ? std::atoi(lvl) : 3;
    if (l < 1 || l > 4) l = 3;
    apply(c, l, flt ? flt : "", out ? out : "");
}

const char *level_name(Level l) {
    switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warning: return "warning";
    case Level::Error: return "error";
    }
    return "?";
}

}  // namespace

void configure_from_env() {
    Config &c = config();
    std::lock_guard g(c.mu);
    c.configured = false;
    ensure_configured(c);
}

void configure(int default_level, std::string_view filters, std::string_view output_path) {
    Config &c = config();
    std::lock_guard g(c.mu);
    apply(c, default_level, filters, output_path);
}

bool enabled(std::string_view module, Level level) {
    Config &c = config();
    std::lock_guard g(c.mu);
    ensure_configured(c);
    for (const Filter &f : c.filters)
        if (module.substr(0, f.prefix.size()) == f.prefix) return int(level) >= f.level;
    return int(level) >= c.default_level;
}

void write(std::string_view module, Level level, std::string_view message) {
    Config &c = config();
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[64];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02d %02d:%02d:%02d.%03d+0000", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(tv.tv_usec / 1000));
    std::lock_guard g(c.mu);
    std::fprintf(c.out, "%s: %d: %s : %.*s : %.*s\n", stamp, int(getpid()), level_name(level),
                 int(module.size()), module.data(), int(message.size()), message.data());
    std::fflush(c.out);
}

void printf(std::string_view module, Level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *text = nullptr;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    write(module, level, text);
    std::free(text);
}

}  // namespace virtsnap::log
