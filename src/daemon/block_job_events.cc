// block_job_events.cc - QMP job events to libvirt block-job events.

#include "daemon/block_job_events.hh"

#include "util/log.hh"

#include <libvirt/libvirt.h>

#define LOG_MODULE "daemon.blockjob"

namespace virtsnap::daemon {

std::optional<BlockJobEmission> BlockJobEventMapper::on_event(const qemu::QmpEvent &ev) {
    if (done_) return std::nullopt;
    if (ev.name == "JOB_STATUS_CHANGE") {
        auto change = qemu::parse_job_status_change(ev);
        if (!change || change->id != job_.job_id) return std::nullopt;
        if (change->status == "ready" && !ready_sent_) {
            ready_sent_ = true;
            return BlockJobEmission{VIR_DOMAIN_BLOCK_JOB_READY, job_.path};
        }
        if (change->status == "concluded") {
            done_ = true;
            if (cancelled_) return BlockJobEmission{VIR_DOMAIN_BLOCK_JOB_CANCELED, job_.path};
            if (completed_ && !failed_) return BlockJobEmission{VIR_DOMAIN_BLOCK_JOB_COMPLETED, job_.path_after};
            return BlockJobEmission{VIR_DOMAIN_BLOCK_JOB_FAILED, job_.path};
        }
        return std::nullopt;
    }
    if (ev.name != "BLOCK_JOB_COMPLETED" && ev.name != "BLOCK_JOB_CANCELLED" && ev.name != "BLOCK_JOB_ERROR" &&
        ev.name != "BLOCK_JOB_READY")
        return std::nullopt;
    auto bj = qemu::parse_block_job_event(ev);
    if (!bj || bj->device != job_.job_id) return std::nullopt;
    if (ev.name == "BLOCK_JOB_COMPLETED") {
        completed_ = true;
        failed_ = bj->error.has_value();
    } else if (ev.name == "BLOCK_JOB_CANCELLED") {
        cancelled_ = true;
    } else if (ev.name == "BLOCK_JOB_ERROR") {
        VS_WARN("block job %s on disk %s: I/O error (action %s)", job_.job_id.c_str(), job_.target.c_str(),
                bj->action ? bj->action->c_str() : "?");
    }
    // BLOCK_JOB_READY: the JOB_STATUS_CHANGE to "ready" reports it.
    return std::nullopt;
}

BlockJobEventRelay::BlockJobEventRelay(qemu::Monitor &monitor, rpc::EventSink *sink, BlockJobEventSource job)
    : monitor_(monitor), sink_(sink), mapper_(std::move(job)) {
    sub_ = monitor_.subscribe("", [this](const qemu::QmpEvent &ev) {
        std::lock_guard lock(mu_);
        auto out = mapper_.on_event(ev);
        if (!out || !sink_) return;
        const auto &j = mapper_.job();
        VS_DEBUG("block job %s on %s: type %d status %d", j.job_id.c_str(), j.target.c_str(), j.type, out->status);
        sink_->domain_block_job(j.dom, out->path, j.target, j.type, out->status);
    });
}

BlockJobEventRelay::~BlockJobEventRelay() { monitor_.unsubscribe(sub_); }

}  // namespace virtsnap::daemon
