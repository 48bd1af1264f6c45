// snapshot_revert_control.cc - DomainControl over a DomainProcess.

#include "qemu_snapshot/snapshot_revert_control.hh"

#include "qemu/agent.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#define LOG_MODULE "qemu_snapshot.control"

namespace virtsnap::qemu_snapshot {

ProcessDomainControl::ProcessDomainControl(qemu::DomainProcess &process, std::string async, std::string job_id,
                                           std::function<bool()> abort_requested)
    : process_(process), async_(std::move(async)), job_id_(std::move(job_id)), abort_(std::move(abort_requested)) {}

qemu::Agent *ProcessDomainControl::agent(Error &why) {
    qemu::Agent *a = process_.agent();
    if (!a) {
        why = qemu::Agent::not_configured_error();
        return nullptr;
    }
    if (!a->connected()) {
        why = qemu::Agent::not_connected_error();
        return nullptr;
    }
    return a;
}

bool ProcessDomainControl::running() { return process_.state().first == VIR_DOMAIN_RUNNING; }

Status ProcessDomainControl::halt() {
    return process_.stop(VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT, VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT);
}

void ProcessDomainControl::set_phase(const std::string &phase) {
    Status st = process_.set_job(qemu::StatusJob{async_, phase, job_id_, 0});
    if (!st) VS_WARN("cannot record job phase: %s", st.error().message().c_str());
}

}  // namespace virtsnap::qemu_snapshot
