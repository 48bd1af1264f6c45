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
#include <memory>
#include <string>
#include <vector>

namespace virtsnap::qemu {

struct QemuCaps;

// Whether KVM runs guests with an emulator binary, and why not.
struct KvmSupport {
    bool usable = false;
    std::string reason;   // for the error message when not usable
};

// A mounted hugetlbfs and the size of its pages (libvirt's virHugeTLBFS).
struct HugetlbfsMount {
    std::string path;
    unsigned long long page_kib = 0;
    bool default_size = false;   // the kernel's default huge page size (Hugepagesize)
};

struct HostProbe {
    // Fixed answer for every binary (golden tests), used when `kvm` is unset.
    bool kvm_usable = false;
    std::string kvm_reason;
    // The real check (host_probe.cc): asked only for <domain type='kvm'>,
    // because finding out runs QEMU and takes seconds on a host where KVM hangs.
    std::function<KvmSupport(const std::string &binary)> kvm;
    // The probed capabilities of a binary (host_probe.cc: probed once per
    // binary and mtime); unset in tests that drive QEMU without probing.
    std::function<Result<std::shared_ptr<const QemuCaps>>(const std::string &binary)> caps;
    // Whether a firmware/nvram file exists (tests pass a fake).
    std::function<bool(const std::string &)> file_exists;
    // Where <memoryBacking><hugepages/> puts guest RAM: virtsnapd.conf's
    // hugetlbfs_mount, else every hugetlbfs in /proc/mounts (host_probe.hh).
    std::vector<HugetlbfsMount> hugetlbfs;

    KvmSupport kvm_support(const std::string &binary) const {
        return kvm ? kvm(binary) : KvmSupport{kvm_usable, kvm_reason};
    }
};

struct RuntimePaths {
    std::string monitor_socket;   // QMP, always a private unix socket
    std::string agent_socket;     // used for agent channels without a source path
    std::string pidfile;
    std::string log;              // QEMU's stderr goes here (process layer); not an argument
    std::string serial_dir;       // unused today; consoles use the XML's own paths
    // Under <hugetlbfs mount>/libvirt/: StateLayout::hugepage_dir_name().
    std::string hugepage_dir_name = "qemu";
};

struct CommandLineOptions {
    bool paused = true;           // -S (DomainProcess always asks for it and resumes after setup)
    bool incoming_defer = false;  // -incoming defer (restore / migration)
    int vnc_display = 0;          // display for autoport VNC (port 5900 + N)
};

struct CommandLine {
    std::vector<std::string> argv;
    // Node indexes of each disk (same order as def.disks), for runtime status.
    std::vector<DiskBlockGraph> disks;
    unsigned next_node_index = 1;
    // Directories QEMU's memory backends create their files in (a mem-path
    // per huge page size used): the process layer creates them before QEMU
    // starts and removes them once it is gone.
    std::vector<std::string> memory_dirs;
};

// The binary a definition runs: its <emulator>, else Debian's QEMU.
std::string emulator_binary(const conf::DomainDef &def);

// `alloc` carries node indexes already used by this domain (status XML).
[[nodiscard]] Result<CommandLine> build_command_line(const conf::DomainDef &def, const RuntimePaths &paths,
                                                     const CommandLineOptions &opts, const HostProbe &host,
                                                     NodeIndexAllocator alloc = NodeIndexAllocator());

}  // namespace virtsnap::qemu
