// log.hh - leveled logging with a per-module filter, as libvirt's virLog.
//
// VIRTSNAP_LOG_LEVEL sets the default level (1 debug, 2 info, 3 warning, 4 error;
// default 3). VIRTSNAP_LOG_FILTERS overrides it per module with libvirt's syntax,
// e.g. "1:qemu.monitor 2:rpc": the first filter whose name is a prefix of the
// module wins. VIRTSNAP_LOG_OUTPUT names a file to append to (default stderr).
#pragma once

#include <cstdarg>
#include <string>
#include <string_view>

namespace virtsnap::log {

enum class Level { Debug = 1, Info = 2, Warning = 3, Error = 4 };

// Re-reads the environment; called once at start and by tests.
void configure_from_env();
// Overrides the configuration (daemon config file).
void configure(int default_level, std::string_view filters, std::string_view output_path);

bool enabled(std::string_view module, Level level);
void write(std::string_view module, Level level, std::string_view message);

void printf(std::string_view module, Level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace virtsnap::log

// Each source file defines LOG_MODULE before using these, e.g. "qemu.monitor".
#define VS_LOG(level, ...)                                                           \
    do {                                                                             \
        if (::virtsnap::log::enabled(LOG_MODULE, level))                            \
            ::virtsnap::log::printf(LOG_MODULE, level, __VA_ARGS__);                \
    } while (0)
#define VS_DEBUG(...) VS_LOG(::virtsnap::log::Level::Debug, __VA_ARGS__)
#define VS_INFO(...) VS_LOG(::virtsnap::log::Level::Info, __VA_ARGS__)
#define VS_WARN(...) VS_LOG(::virtsnap::log::Level::Warning, __VA_ARGS__)
#define VS_ERROR(...) VS_LOG(::virtsnap::log::Level::Error, __VA_ARGS__)
