// command_line.hh - the QEMU command line of a domain.
//
// DomainDef + runtime paths + start options -> argv. Anything in the definition
// this backend cannot honour exactly is refused with VIR_ERR_CONFIG_UNSUPPORTED
// naming the element, rather than starting a VM that differs from the XML.
// Host facts (is KVM usable, which firmware files exist) come in through
// HostProbe so the same input always gives the same argv (golden tests).
#pragma once

#include "conf/domain_def.hh"
#include "qemu/block_graph.hh"
#include "util/result.hh"

#include <functional>
#include <string>
#include <vector>

namespace virtsnap::qemu {

struct HostProbe {
    bool kvm_usable = false;
    std::string kvm_reason;   // why not, for the error message
    // Whether a firmware/nvram file exists (tests pass a fake).
    std::function<bool(const std::string &)> file_exists;
};

struct RuntimePaths {
    std::string monitor_socket;   // QMP, always a private unix socket
    std::string agent_socket;     // used for agent channels without a source path
    std::string pidfile;
    std::string log;              // QEMU's stderr goes here (process layer); not an argument
    std::string serial_dir;       // unused today; consoles use the XML's own paths
};

struct CommandLineOptions {
    bool paused = true;           // -S: the lifecycle resumes after setup
    bool incoming_defer = false;  // -incoming defer (restore / migration)
    int vnc_display = 0;          // display for autoport VNC (port 5900 + N)
};

struct CommandLine {
    std::vector<std::string> argv;
    // Node indexes of each disk (same order as def.disks), for runtime status.
    std::vector<DiskBlockGraph> disks;
    unsigned next_node_index = 1;
};

// `alloc` carries node indexes already used by this domain (status XML).
[[nodiscard]] Result<CommandLine> build_command_line(const conf::DomainDef &def, const RuntimePaths &paths,
                                                     const CommandLineOptions &opts, const HostProbe &host,
                                                     NodeIndexAllocator alloc = NodeIndexAllocator());

}  // namespace virtsnap::qemu
