// block_job_events.hh - libvirt's block-job events for one QEMU block job the
// driver runs (the commits of an external snapshot delete), derived from the
// QMP events QEMU sends about it, as libvirt's qemuBlockJobEmitEvents does:
//
//   JOB_STATUS_CHANGE ready      ─► READY (3)
//   BLOCK_JOB_COMPLETED (error?) ─┐
//   BLOCK_JOB_CANCELLED          ─┼─ remembered
//   JOB_STATUS_CHANGE concluded  ─┴► COMPLETED (0) | FAILED (1, error or never
//                                    completed) | CANCELED (2, cancelled)
//   BLOCK_JOB_ERROR              ─► logged only (libvirt reports an I/O error
//                                    event there, not a block-job event)
//
// Each status goes out twice through the EventSink, in one call:
// VIR_DOMAIN_EVENT_ID_BLOCK_JOB names the disk by its source path (only for a
// local image), VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2 by its target ("vda"). The
// path is the disk's source at that moment: after an active commit completed
// (the pivot) that is the base image, as in libvirt.
//
// Handlers run on the monitor thread and only publish (never call QEMU).
// Create the relay before the command that starts the job, so no transition
// is missed; once it is destroyed nothing more is published.
#pragma once

#include "qemu/monitor.hh"
#include "rpc/driver.hh"

#include <mutex>
#include <optional>
#include <string>

namespace virtsnap::daemon {

struct BlockJobEventSource {
    rpc::DomainRef dom;
    std::string job_id;         // QEMU's job id
    std::string target;         // "vda"
    int type = 0;               // VIR_DOMAIN_BLOCK_JOB_TYPE_*
    std::string path;           // disk source while the job runs; "" when not a local image
    std::string path_after;     // disk source once the job completed
};

// One event to publish: status and the path it names.
struct BlockJobEmission {
    int status = 0;             // VIR_DOMAIN_BLOCK_JOB_COMPLETED ... _READY
    std::string path;
};

// The mapping alone (no monitor): feed it the QMP events of any job.
class BlockJobEventMapper {
public:
    explicit BlockJobEventMapper(BlockJobEventSource job) : job_(std::move(job)) {}
    // What to publish for `event`, if anything; events of other jobs are ignored.
    std::optional<BlockJobEmission> on_event(const qemu::QmpEvent &event);
    const BlockJobEventSource &job() const { return job_; }

private:
    BlockJobEventSource job_;
    bool ready_sent_ = false;
    bool done_ = false;
    bool completed_ = false;
    bool failed_ = false;
    bool cancelled_ = false;
};

class BlockJobEventRelay {
public:
    // `sink` may be null (no server): nothing is published then.
    BlockJobEventRelay(qemu::Monitor &monitor, rpc::EventSink *sink, BlockJobEventSource job);
    ~BlockJobEventRelay();
    BlockJobEventRelay(const BlockJobEventRelay &) = delete;
    BlockJobEventRelay &operator=(const BlockJobEventRelay &) = delete;

private:
    qemu::Monitor &monitor_;
    rpc::EventSink *sink_;
    std::mutex mu_;  // events arrive on the monitor thread, in order; the mutex keeps the mapper's state private
    BlockJobEventMapper mapper_;
    qemu::Monitor::SubscriptionId sub_ = 0;
};

}  // namespace virtsnap::daemon
