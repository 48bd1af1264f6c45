// process_paths.hh - every file one running QEMU of a domain uses: runtime
// status, monitor and agent sockets, pid file and log, as StateLayout places them.
//
// Kept apart from DomainProcess so that the daemon can compute them (to build
// a command line, to find status files at start-up) without starting anything.
#pragma once

#include "conf/state_layout.hh"
#include "qemu/command_line.hh"
#include "util/result.hh"

#include <string>
#include <string_view>

namespace virtsnap::qemu {

struct ProcessPaths {
    std::string domain;          // the domain name the paths were made for
    std::string run_dir;         // DIR/run/qemu
    std::string log_dir;         // DIR/log/qemu
    std::string status_file;     // DIR/run/qemu/<name>.xml
    std::string monitor_socket;  // DIR/run/qemu/<name>.monitor
    std::string agent_socket;    // DIR/run/qemu/<name>.agent
    std::string pidfile;         // DIR/run/qemu/<name>.pid
    std::string log_file;        // DIR/log/qemu/<name>.log
    std::string hugepage_dir_name;   // StateLayout::hugepage_dir_name()

    // Fails (INVALID_ARG / INTERNAL_ERROR) for names that are not one path
    // component or whose socket paths would not fit in sun_path.
    [[nodiscard]] static Result<ProcessPaths> for_domain(const StateLayout &layout, std::string_view name);

    // What the command-line builder needs.
    RuntimePaths runtime() const;
};

}  // namespace virtsnap::qemu
