// domain_obj.hh - one domain known to the daemon: its definitions, its
// libvirt state and reason, its job lock and (when running) its QEMU process.
//
// Identity (uuid) never changes. Everything else is guarded by `mu`, which is
// held only for short reads and updates - never across a monitor call or a
// job; long operations take `job` first.
#pragma once

#include "conf/domain_def.hh"
#include "qemu/domain_job.hh"

#include <libvirt/libvirt.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace virtsnap::conf { class SnapshotList; }  // [snapcreate]

namespace virtsnap::qemu {

class DomainProcess;

class DomainObj {
public:
    explicit DomainObj(std::shared_ptr<const conf::DomainDef> def, bool persistent);
    ~DomainObj();
    DomainObj(const DomainObj &) = delete;
    DomainObj &operator=(const DomainObj &) = delete;

    const Uuid uuid;

    mutable std::mutex mu;
    // The persistent definition (for a transient domain: the one it was started with).
    std::shared_ptr<const conf::DomainDef> def;
    // The definition QEMU runs with; null while shut off.
    std::shared_ptr<const conf::DomainDef> live;
    bool persistent = true;
    int id = -1;
    int state = VIR_DOMAIN_SHUTOFF;
    int reason = VIR_DOMAIN_SHUTOFF_UNKNOWN;
    bool has_managed_save = false;
    // Statistics of the last finished job (domjobinfo --completed).
    std::optional<JobStats> completed_job;
    std::unique_ptr<DomainProcess> process;
    // The domain's snapshots; null until first loaded. [snapcreate]
    std::shared_ptr<conf::SnapshotList> snapshots;

    DomainJob job;

    // Under `mu`: the name clients see (persistent def's name).
    std::string name() const { return def->name; }
    bool active() const { return id >= 0; }
};

}  // namespace virtsnap::qemu
