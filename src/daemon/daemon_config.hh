// daemon_config.hh - virtsnapd's configuration file (virtsnapd.conf).
//
// The syntax is libvirt's: `key = value` lines, values are "strings" or
// integers (octal with a leading 0), `#` starts a comment. Only the settings
// that matter exist; an unknown key is an error so typos do not pass silently.
#pragma once

#include "util/result.hh"

#include <optional>
#include <string>

#include <sys/types.h>

namespace virtsnap::daemon {

struct DaemonConfig {
    mode_t unix_sock_rw_perms = 0600;
    mode_t unix_sock_ro_perms = 0600;
    std::string unix_sock_group;          // "" = the daemon's group
    int log_level = 3;                    // 1 debug .. 4 error
    std::string log_filters;              // "1:qemu.monitor 2:rpc"
    std::string log_outputs;              // a file path, "" = stderr
    unsigned max_workers = 8;
    unsigned prio_workers = 5;            // libvirtd's: threads for high-priority calls only
    int keepalive_interval = 5;           // seconds; <= 0 (libvirt: -1) never pings
    unsigned keepalive_count = 5;         // pings before dropping; 0: drop after one silent interval
    // "instant" (background-snapshot when the host can) or "precopy" (libvirt's method)
    std::string snapshot_live_method = "instant";
    // The memory image's layout (libvirt's qemu.conf settings of these names):
    // "raw" (QEMU's plain stream, what libvirt 9.0 reads) or "sparse" (the
    // mapped-ram layout libvirt 11 calls "sparse"; needs QEMU 9.0 or later).
    // snapshot_image_format applies to memory snapshots taken without the
    // instant method, save_image_format to save and managed save.
    std::string snapshot_image_format = "raw";
    std::string save_image_format = "raw";
    // multifd channels writing and reading a sparse image (libvirt's
    // "parallel.channels"); 0 leaves it to QEMU's migration thread alone.
    unsigned memory_image_channels = 2;
    // How a raw memory image written while the guest is paused (memory
    // snapshots without LIVE, save, managed save) reaches the
    // disk: "auto" streams it through virtsnap-relay with O_DIRECT when the
    // guest's RAM exceeds what the page cache takes before background
    // writeback, else QEMU writes the file through the page cache; "always"
    // and "never" decide for every image. A save with
    // VIR_DOMAIN_SAVE_BYPASS_CACHE always bypasses the page cache, as libvirt's.
    std::string memory_image_direct_io = "auto";
    // Where <memoryBacking><hugepages/> puts guest RAM (libvirt's qemu.conf
    // setting of this name, one path): "" = every hugetlbfs in /proc/mounts.
    std::string hugetlbfs_mount;
    std::string qemu_binary = "/usr/bin/qemu-system-x86_64";
    std::string qemu_img_binary = "/usr/bin/qemu-img";

    // Parses the text of a configuration file; `what` names it in errors.
    [[nodiscard]] static Result<DaemonConfig> parse(std::string_view text, std::string_view what);
    // Reads a file; a missing file gives the defaults.
    [[nodiscard]] static Result<DaemonConfig> load(const std::string &path);
};

}  // namespace virtsnap::daemon
