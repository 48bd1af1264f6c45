// process_paths.cc - per-domain runtime paths from the state layout.

#include "qemu/process_paths.hh"

namespace virtsnap::qemu {

Result<ProcessPaths> ProcessPaths::for_domain(const StateLayout &layout, std::string_view name) {
    ProcessPaths p;
    p.domain = std::string(name);
    p.run_dir = layout.runtime_dir();
    p.log_dir = layout.log_dir();
    p.status_file = TRY(layout.status_file(name));
    p.monitor_socket = TRY(layout.monitor_socket(name));
    p.agent_socket = TRY(layout.agent_socket(name));
    p.pidfile = TRY(layout.domain_pid_file(name));
    p.log_file = TRY(layout.log_file(name));
    p.hugepage_dir_name = layout.hugepage_dir_name();
    return p;
}

RuntimePaths ProcessPaths::runtime() const {
    RuntimePaths r;
    r.monitor_socket = monitor_socket;
    r.agent_socket = agent_socket;
    r.pidfile = pidfile;
    r.log = log_file;
    r.hugepage_dir_name = hugepage_dir_name;
    return r;
}

}  // namespace virtsnap::qemu
