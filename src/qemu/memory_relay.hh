// memory_relay.hh - the helper process that writes an instant snapshot's
// migration stream into its memory image (virtsnap-relay,
// memory_relay_main.cc), and waiting for one that outlived a daemon. It also
// writes a paused guest's stream with O_DIRECT (relay_direct_copy.hh).
//
// Protocol, one word on the control pipe:
//
//   start() ──► relay holds an exclusive flock on the image, waits for a word
//      ├── open_gate() 'g' ─┐
//      ├── daemon gone: EOF ┼─► drops the gate's filler, relays the stream to
//      │                    │   the image until QEMU closes it; a write error
//      │                    │   truncates the image to the stream offset and
//      │                    │   the rest is read and dropped (QEMU's stream
//      │                    │   still completes)
//      └── discard() 'd' ───┴─► the same, writing nothing
//   abandon() (SIGUSR1), at any time: the image is truncated to the stream
//   offset and the rest of the stream dropped. How a job gives up a background
//   snapshot: migrate_cancel would leave QEMU 7.2 unable to take another.
//   finish(): waits for the exit; ok only when every byte reached the image.
//
// Why a process: with the relay in the daemon, a daemon crash would break the
// stream, and QEMU 7.2 does not recover from a broken background snapshot
// (no later snapshot or migration). The relay lives in its own session, so
// it outlives the daemon as QEMU does; recovery finds it through its flock.
#pragma once

#include "util/process.hh"
#include "util/raii.hh"
#include "util/result.hh"

#include <chrono>
#include <cstdint>
#include <string>

namespace virtsnap::qemu {

class MemoryRelay {
public:
    // Starts the relay reading `stream` (the gate's read end), dropping `skip`
    // bytes first, writing the rest into `image_fd` from `offset` on; with
    // `direct`, through O_DIRECT where the file system takes it
    // (relay_direct_copy.hh: a paused guest's stream, not a gated one).
    [[nodiscard]] static Result<MemoryRelay> start(UniqueFd stream, int image_fd, uint64_t offset, size_t skip,
                                                   bool direct = false);

    MemoryRelay(MemoryRelay &&) = default;
    MemoryRelay &operator=(MemoryRelay &&) = default;
    // Without a word sent: discard(). Then waits a moment for the exit and
    // leaves a relay still reading (QEMU still writing) to end by itself.
    ~MemoryRelay();

    [[nodiscard]] Status open_gate();
    [[nodiscard]] Status discard();
    void abandon();
    // Waits up to `timeout` for the relay to end. Errors: VIR_ERR_OPERATION_FAILED
    // with the relay's reason (errno) or how it ended.
    [[nodiscard]] Status finish(std::chrono::milliseconds timeout);
    pid_t pid() const { return child_.pid(); }

private:
    MemoryRelay() = default;
    [[nodiscard]] Status say(char word);

    process::Child child_;
    UniqueFd control_;
    bool said_ = false;
};

// Where virtsnap-relay is: $VIRTSNAP_RELAY, next to the running executable,
// the build tree, or the install location.
std::string relay_binary();

// Waits until no relay writes the image at `path` (the relay's flock is
// free): true, or false when `timeout` passed first or the image is gone.
bool wait_for_memory_relay(const std::string &path, std::chrono::milliseconds timeout);

// abandon() for the relay writing the image at `path`, found through /proc
// (the daemon that started it is gone). False when none is.
bool abandon_memory_relay(const std::string &path);

}  // namespace virtsnap::qemu
