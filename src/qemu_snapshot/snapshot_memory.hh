// snapshot_memory.hh - the memory image of an external snapshot: libvirt's
// save-image layout (qemu/save_image.hh) filled by a QMP migration
// (qemu/memory_migration.hh), so `virsh restore` on virtsnapd or libvirt
// reads it.
//
//   SaveImageWriter::create (header "Part", XML, cookie, padding)
//     ─► migrate_memory_to_fd ("snapshot job": progress, abort = migrate_cancel)
//     ─► finalize (header "Save", fsync)
//   any failure ─► the writer's abort(): a file we created is unlinked
//   abort of an instant snapshot ─► the relay abandons the stream (never
//   migrate_cancel: QEMU 7.2 could not take another background snapshot)
//
// The instant method (background-snapshot) with an InstantSwitch installed
// does everything that can be done with the guest running first, so that the
// guest-visible pause holds only what must be atomic:
//
//   running:  image header+XML written, migration capabilities/parameters set,
//             the gate pipe made, virtsnap-relay started on it (qemu/memory_relay.hh),
//             its write end passed (getfd "migrate"), QEMU's pid found
//   gated (QemuCaps::background_snapshot_gate_safe, qemu/migration_gate.hh):
//     migrate "fd:migrate" ─► QEMU's RAM walk, then held at the gate
//     ── InstantSwitch::run(): stop, ONE disk transaction ──   guest stopped
//     relay told 'g' ─► QEMU captures devices, write-protects RAM, resumes
//   walk-overlap (the gate unsafe, QEMU 10; once two walks of this QEMU are
//   known, the least at least 8 ms):
//     relay told 'g'; migrate ─► QEMU's RAM walk, without its main lock, guest running
//     ── 85 % of that walk less 2 ms after migrate: InstantSwitch::pause() ──  guest stopped
//     the first STOP event came before MIGRATION "active"? (QEMU's own stop
//     comes after "active", so then it found the guest stopped: it captures
//     it without resuming it)
//       yes ─► InstantSwitch::switch_disks() ─► RAM in the image ─► resume()
//       no (QEMU captured the guest running: the stop came too late) ─►
//          resume(); the relay drops the stream, QEMU's snapshot completes
//          into nothing, huge pages re-collapsed; then stop-first, on a new stream
//   stop-first (the gate unsafe and no estimate yet, VIRTSNAP_SNAPSHOT_GATE=0):
//     relay told 'g'; ── InstantSwitch::run() ──; migrate ─► QEMU's RAM walk,
//     capture, write-protect (the walk inside the pause) ─► RAM in the image:
//     `cont` if QEMU left the guest paused (QEMU 10 does; 7.2 resumes it)
//   running:  RAM relayed into the image, settings restored, relay ended well,
//             header "Save", fsync, then the
//             guest RAM's huge pages re-collapsed in the background
#pragma once

#include "qemu/memory_migration.hh"
#include "qemu/monitor.hh"
#include "util/result.hh"

#include <functional>
#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

struct MemoryImageOptions {
    std::string domain_xml;          // live definition, migratable form
    bool was_running = false;        // restore resumes the guest
    std::function<bool()> abort_requested;
    qemu::MigrationTracker *tracker = nullptr;
    std::vector<std::string> capabilities;  // e.g. background-snapshot
    // Set: a sparse image (mapped-ram layout, save image format 6). Not for
    // the instant method: its stream goes through the gate pipe.
    std::optional<qemu::MappedRam> mapped_ram;
    // The raw stream written by virtsnap-relay with O_DIRECT
    // (MemoryMigrationOptions::direct_io). Not for the instant method.
    bool direct_io = false;
    // Non-null: the image's flush (SaveImageWriter::finalize: fsync, the complete
    // magic, fsync) may be left for later. When the image allows it
    // (finalize_deferrable), write_memory_image stores it here and returns once
    // QEMU's stream is complete; the caller runs it after the guest resumed.
    std::function<Status()> *deferred_flush = nullptr;
};

// The <cookie> libvirt writes for a snapshot of a guest without a host-model CPU.
inline constexpr const char *kSnapshotSaveCookie = "<cookie>\n</cookie>\n";

// Whether this QEMU on this host can run a background-snapshot migration
// (the capability exists and QEMU accepts it: userfaultfd write-protect,
// a compatible memory backend). Leaves the capability off. Errors are
// OPERATION_UNSUPPORTED saying why.
[[nodiscard]] Status check_background_snapshot(qemu::Monitor &mon);

// Whether the filesystem of `memory_file` has room for the memory image of an
// instant snapshot of a guest with `ram_bytes` of RAM (the image can be that
// large, plus device state). QEMU 7.2 does not recover from a background
// snapshot whose stream fails: guest RAM stays registered for write
// tracking, later background snapshots are refused and later migrations hang
// in setup; so running out of space is refused before anything starts.
// Errors: VIR_ERR_OPERATION_FAILED naming the free and the needed space, or
// the system error of statvfs.
[[nodiscard]] Status check_memory_image_room(const std::string &memory_file, uint64_t ram_bytes);

// What the instant method must do with the guest stopped, at the last moment
// before QEMU captures the guest (create_external_active: stop + the disk
// transaction). While one is alive on a thread, write_memory_image with the
// background-snapshot capability on that thread switches the disks exactly
// once: right before `migrate` (stop-first), while QEMU is held at the gate
// (gated), or once the stop is known to have come before QEMU's capture
// (walk-overlap). When the switch fails, nothing is captured: no migration
// (stop-first), or the stream is dropped and QEMU's snapshot completes into
// nothing.
class InstantSwitch {
public:
    using Fn = std::function<Status()>;
    // `pause` stops the guest (nothing to do when it is stopped), `switch_disks`
    // sends the transaction, `resume` lets the guest run again after a stop
    // that came too late for QEMU's capture.
    InstantSwitch(Fn pause, Fn switch_disks, Fn resume);
    ~InstantSwitch();
    InstantSwitch(const InstantSwitch &) = delete;
    InstantSwitch &operator=(const InstantSwitch &) = delete;

    // The switch installed on this thread, or null.
    static InstantSwitch *current();
    [[nodiscard]] Status pause() { return pause_(); }
    [[nodiscard]] Status switch_disks();
    [[nodiscard]] Status resume() { return resume_(); }
    // pause(), then switch_disks().
    [[nodiscard]] Status run();
    // Whether the disks were switched (or their switch was tried).
    bool ran() const { return ran_; }

private:
    Fn pause_, switch_disks_, resume_;
    bool ran_ = false;
    InstantSwitch *outer_ = nullptr;
};

// check_background_snapshot() succeeding marks `mon`: its next instant
// snapshot's memory is written by write_memory_image (the driver's writer), so
// the state machine may hand it the switch. Takes (clears) the mark. A machine
// run with another writer (tests) finds no mark and switches before calling it.
bool take_instant_writer_mark(qemu::Monitor &mon);

[[nodiscard]] Status write_memory_image(qemu::Monitor &mon, const std::string &path, const MemoryImageOptions &opts);

}  // namespace virtsnap::qemu_snapshot
