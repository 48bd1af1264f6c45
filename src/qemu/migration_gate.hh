// migration_gate.hh - a pipe that holds QEMU's migration stream at its first
// write: the gated order of instant snapshots (docs/snapshots.md, "Instant
// snapshots: the pause").
//
// QEMU 7.2's background-snapshot thread walks guest RAM (populate) while the
// guest runs and without QEMU's main lock, then flushes the stream's first
// bytes, and only then takes the lock and stops the guest. Given a pipe that is
// already full, that thread blocks in the flush: the walk is over, the guest
// still runs, the monitor still answers. The caller stops the guest, switches
// the disks, and opens the gate by reading the filler out; QEMU then captures
// device state and write-protects RAM within a pause that no longer holds the
// walk.
//
// Only sound where QEMU does not hold its main lock across that flush
// (QemuCaps::background_snapshot_gate_safe, probed): QEMU 10.0 does, and its
// monitor would stop answering while the gate is shut.
#pragma once

#include "util/raii.hh"
#include "util/result.hh"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>

namespace virtsnap::qemu {

class MigrationGate {
public:
    // The pipe is one page, full of this many bytes of filler: the reader
    // drops them before the stream.
    static constexpr size_t kFillerBytes = 4096;

    // A shut gate: the pipe shrunk to one page and filled. Errors are system
    // errors of pipe2/fcntl/write.
    [[nodiscard]] static Result<MigrationGate> shut();

    int write_end() const { return write_.get(); }
    int read_end() const { return read_.get(); }
    // Once QEMU holds its own copy (getfd), ours must go: QEMU closing its
    // copy at the end of the stream is the reader's EOF.
    void close_write_end() { write_.reset(); }
    UniqueFd take_read_end() { return std::move(read_); }

private:
    UniqueFd read_, write_;
};

// Whether a thread of process `pid` is blocked writing into a full pipe
// (/proc/PID/task/*/wchan is pipe_write). Where wchan says nothing (kernels
// that hide it), this never holds: the probe then finds no gate.
bool thread_blocked_in_pipe_write(pid_t pid);

// Polls thread_blocked_in_pipe_write until it holds (true), `timeout` passes
// or `give_up` says so (false). `give_up` is asked about every 20 ms.
bool wait_until_gate_holds(pid_t pid, std::chrono::milliseconds timeout, const std::function<bool()> &give_up);

}  // namespace virtsnap::qemu
