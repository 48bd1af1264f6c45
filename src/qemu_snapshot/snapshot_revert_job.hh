// snapshot_revert_job.hh - runs one QEMU job (snapshot-load, snapshot-delete,
// block-commit) of a revert or delete to its end: waits, cancels it when the
// client aborts, reads its error and dismisses it.
#pragma once

#include "qemu/monitor.hh"
#include "qemu_snapshot/snapshot_create.hh"
#include "util/result.hh"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

// Waits until the job of `watch` concludes and returns QEMU's error, if any,
// WITHOUT dismissing it: a caller that journals the outcome does so while the
// concluded job still tells a restarted daemon what happened. An abort is
// OPERATION_ABORTED (the job is dismissed then).
[[nodiscard]] Result<std::optional<std::string>> await_snapshot_job(DomainControl &ctl, qemu::JobWatch &watch,
                                                                    std::chrono::milliseconds timeout);

// Waits until the job of `watch` concludes. A job error is OPERATION_FAILED
// "<what>: <QEMU's error>"; an abort is OPERATION_ABORTED.
[[nodiscard]] Status run_snapshot_job(DomainControl &ctl, qemu::JobWatch &watch, std::chrono::milliseconds timeout,
                                      const std::string &what);

// Waits until the job of `watch` reaches one of `statuses` (e.g. "ready" of an
// active commit, "pending" of a commit without auto-finalize).
[[nodiscard]] Status wait_job_status(DomainControl &ctl, qemu::JobWatch &watch,
                                     const std::vector<std::string> &statuses, std::chrono::milliseconds timeout,
                                     const std::string &what);

}  // namespace virtsnap::qemu_snapshot
