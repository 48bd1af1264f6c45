// domain_status.hh - the runtime status file of a running domain,
// DIR/run/qemu/<name>.xml: what a restarted daemon needs to find its QEMU again.
//
// The document mirrors libvirt's <domstatus> (state, reason and pid on the
// root, the monitor socket, the next node index, the live <domain> in status
// form) and adds what virtsnap relies on:
//
//   <domstatus state='running' reason='booted' pid='4242'>
//     <process startTime='123456' noShutdown='yes'/>   /proc/<pid>/stat field 22:
//                                                      tells our QEMU from a reused pid
//     <monitor path='DIR/run/qemu/vm.monitor' type='unix'/>
//     <agent path='DIR/run/qemu/vm.agent' type='unix'/> only with an agent channel
//     <log path='DIR/log/qemu/vm.log'/>
//     <memoryPath path='/dev/hugepages/libvirt/qemu/1-vm'/>   a memory backend's directory
//     <nodename index='3'/>                             next free libvirt-<N>-* index
//     <blockGraph>                                      node names per disk layer, top first
//       <disk dev='vda'>
//         <layer index='2' storage='libvirt-2-storage' format='libvirt-2-format'/>
//         <layer index='1' storage='libvirt-1-storage' format='libvirt-1-format'/>
//       </disk>
//     </blockGraph>
//     <job async='snapshot-create' phase='transaction' id='J1' flags='0x0'/>
//     <domain type='qemu' id='1'>...</domain>
//   </domstatus>
//
// It is always replaced atomically (file::write_atomic), so a reader sees the
// old or the new document, never a torn one.
#pragma once

#include "conf/domain_def.hh"
#include "util/result.hh"

#include <libvirt/libvirt.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::qemu {

// One layer of a disk's block graph as QEMU knows it.
struct LayerNodeNames {
    unsigned index = 0;
    std::string storage;   // protocol node, libvirt-<N>-storage
    std::string format;    // format node, libvirt-<N>-format
    bool operator==(const LayerNodeNames &) const = default;
};

struct DiskNodeNames {
    std::string target;                  // <target dev>
    std::vector<LayerNodeNames> layers;  // [0] is the top (what the guest sees)
    std::string top_node() const { return layers.empty() ? "" : layers.front().format; }
    bool operator==(const DiskNodeNames &) const = default;
};

// The job that was running when the status was written; the crash-safe
// journal keeps the details under `id`.
struct StatusJob {
    std::string async;      // e.g. "snapshot-create", "snapshot-revert"
    std::string phase;      // the state machine's step
    std::string id;         // journal entry
    unsigned long long flags = 0;
    bool operator==(const StatusJob &) const = default;
};

struct DomainStatus {
    int state = VIR_DOMAIN_RUNNING;   // virDomainState
    int reason = 0;                   // reason enum of that state
    pid_t pid = -1;
    unsigned long long start_time = 0;  // 0 = unknown
    bool no_shutdown = true;          // QEMU stays after guest poweroff (-no-shutdown)
    std::string monitor_path;
    std::string agent_path;           // "" = no guest agent channel
    std::string log_path;
    std::vector<std::string> memory_paths;   // CommandLine::memory_dirs, removed when QEMU is gone
    unsigned next_node_index = 1;
    std::vector<DiskNodeNames> disks;
    std::optional<StatusJob> job;
    std::shared_ptr<const conf::DomainDef> def;   // the live definition

    std::string format() const;
    // Errors: VIR_ERR_XML_ERROR / VIR_ERR_INTERNAL_ERROR (VIR_FROM_QEMU) naming what is wrong.
    [[nodiscard]] static Result<DomainStatus> parse(std::string_view xml, std::string_view what = "(status)");

    // Atomic replace of `path` (mode 0600), durable within DeferredSync's delay.
    [[nodiscard]] Status save(const std::string &path) const;
    [[nodiscard]] static Result<DomainStatus> load(const std::string &path);

    const DiskNodeNames *disk(std::string_view target) const;
};

// libvirt's names for states and reasons ("running", "booted", "from snapshot").
std::string_view domain_state_name(int state);
std::string_view domain_reason_name(int state, int reason);
std::optional<int> domain_state_from_name(std::string_view name);
std::optional<int> domain_reason_from_name(int state, std::string_view name);

}  // namespace virtsnap::qemu
