// snapshot_revert_control.hh - DomainControl over a running DomainProcess, as
// the revert and delete machines drive it from the daemon.
#pragma once

#include "qemu/domain_process.hh"
#include "qemu_snapshot/snapshot_create.hh"

#include <functional>
#include <string>

namespace virtsnap::qemu_snapshot {

class ProcessDomainControl : public DomainControl {
public:
    // `async` names the job in the runtime status ("snapshot-revert", "snapshot-delete").
    ProcessDomainControl(qemu::DomainProcess &process, std::string async, std::string job_id,
                         std::function<bool()> abort_requested);

    qemu::Monitor &monitor() override { return process_.monitor(); }
    qemu::Agent *agent(Error &why) override;
    bool running() override;
    Status pause(int paused_reason) override { return process_.suspend(paused_reason); }
    Status resume(int running_reason) override { return process_.resume(running_reason); }
    void note_paused(int) override {}
    Status halt() override;
    bool abort_requested() override { return abort_ ? abort_() : false; }
    void set_phase(const std::string &phase) override;

private:
    qemu::DomainProcess &process_;
    std::string async_, job_id_;
    std::function<bool()> abort_;
};

}  // namespace virtsnap::qemu_snapshot
