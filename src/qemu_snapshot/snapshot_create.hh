// snapshot_create.hh - the state machines of virDomainSnapshotCreateXML.
//
// The driver (src/daemon/qemu_driver_snapshot_create.cc) validates flags,
// parses and aligns the definition, runs snapshot_prepare() and then one of
// the four machines below. Each machine registers an undo on its Txn before
// every side effect, records a journal intent before it (JobJournal, so a
// killed daemon can finish or roll back: docs/snapshots.md), and has exactly
// one commit point, after which it only moves forward. The first error is the
// one reported; rollback never replaces it.
//
// Internal, shut off (qemuDomainSnapshotForEachQcow2Raw):
//
//   start ──► for each internal disk i:  [undo: qemu-img snapshot -d]
//               qemu-img snapshot -c ──fail──► undo disks i-1..0 ──► error
//             ══ commit ══ (all disks have the tag) ──► done
//
// External, shut off (qemuSnapshotCreateInactiveExternal):
//
//   start ──► for each external disk:  [undo: unlink overlay we created]
//               qemu-img create -b <source> ──fail──► unlink created ──► error
//             ══ commit ══ returns the definition with the overlays on top
//             (the caller saves it; a failed save rolls the files back)
//
// Internal, running or paused (QEMU's snapshot-save job):
//
//   start ─► [running] stop (PAUSED_SAVE)           [undo: cont]
//         ─► tag free on every disk? ──no──► error (nothing touched but the pause)
//         ─► snapshot-save job                      [undo: snapshot-delete job]
//              │ fails / aborted ──► undo ──► error
//         ══ commit ══ job concluded without error
//         ─► HALT: stop QEMU (SHUTOFF_FROM_SNAPSHOT) | was running: cont | stay paused
//
// External, running or paused (qemuSnapshotCreateActiveExternal):
//
//   start ─► [QUIESCE] guest-fsfreeze-freeze         [undo: thaw]
//         ─► [memory, running, not LIVE] stop        [undo: cont]
//         ─► [memory] save image: header, XML, RAM   [undo: unlink image]
//              (LIVE: QEMU pauses the guest at convergence; [undo: cont])
//              flushed here, or left unflushed (deferred flush, below)
//         ─► per disk: create overlay file           [undo: unlink if we created it]
//                      blockdev-add storage node     [undo: blockdev-del]
//                      blockdev-add format node      [undo: blockdev-del]
//         ─► abort requested? ──yes──► undo ──► error
//         ══ commit ══ ONE QMP transaction of blockdev-snapshot actions
//         ─► [QUIESCE] thaw (its failure is reported only if nothing else failed)
//         ─► HALT: stop QEMU | was running: cont | stay paused
//   With a deferred flush (running guest, no HALT), the commit moves:
//         ─► transaction                             [undo: active block-commit of
//                                                     each overlay into its old top]
//         ─► cont: the pause ends here
//         ─► flush the image ──fail──► undo ──► error (guest running, no file left)
//         ══ commit ══ image complete and flushed
//
// External with memory, instant method (INSTANT, or LIVE when configured), running:
//
//   start ─► overlays prepared as above            [undos: blockdev-del, unlink]
//         ─► stop                                   [undo: cont]
//         ─► transaction (disks switched)           [undo: active block-commit of each
//                                                    overlay into its old top, pivot]
//         ─► background-snapshot migration: RAM as of the stop; QEMU resumes the
//            guest by itself once write tracking is set up  [undo: unlink image]
//         ══ commit ══ image complete
//         ─► HALT: stop QEMU | running already
// A paused domain takes the non-live path (nothing runs while RAM is written).
//
// Every failure before the commit point leaves: the guest in the run state it
// had, no new node in QEMU, no file we created, no metadata.
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_def.hh"
#include "qemu/agent.hh"
#include "qemu/domain_status.hh"
#include "qemu/monitor.hh"
#include "qemu_snapshot/snapshot_prepare.hh"
#include "qemu_snapshot/txn.hh"
#include "util/job_journal.hh"
#include "util/result.hh"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

// What the machines need from a running domain. The driver implements it over
// DomainProcess (events, status file); tests over a mock QMP monitor.
class DomainControl {
public:
    virtual ~DomainControl() = default;
    virtual qemu::Monitor &monitor() = 0;
    // Null when the domain has no usable guest agent; `why` is the error to report.
    virtual qemu::Agent *agent(Error &why) = 0;
    // vCPUs running (not paused).
    virtual bool running() = 0;
    virtual Status pause(int paused_reason) = 0;
    virtual Status resume(int running_reason) = 0;
    // QEMU stopped the guest by itself (migration convergence): record it as paused.
    virtual void note_paused(int paused_reason) { (void)paused_reason; }
    // Stops QEMU after a HALT snapshot (SHUTOFF_FROM_SNAPSHOT).
    virtual Status halt() = 0;
    virtual bool abort_requested() = 0;
    // The machine's current phase (runtime status, logs).
    virtual void set_phase(const std::string &phase) { (void)phase; }
};

// A journal that may be absent (NO journal directory in some tests).
class StepLog {
public:
    explicit StepLog(JobJournal *journal) : journal_(journal) {}
    [[nodiscard]] Status intent(std::string_view step, const JournalFields &f = {}) {
        return journal_ ? journal_->intent(step, f) : ok();
    }
    [[nodiscard]] Status done(std::string_view step, const JournalFields &f = {}) {
        return journal_ ? journal_->done(step, f) : ok();
    }
    [[nodiscard]] Status commit(const JournalFields &f = {}) { return journal_ ? journal_->commit(f) : ok(); }

private:
    JobJournal *journal_;
};

// The flush of a memory image (fsync, the complete magic, fsync), left by its
// writer for later.
using MemoryFlush = std::function<Status()>;

// Writes the memory image of an external snapshot (libvirt's save-image
// layout). `live`: the guest runs while RAM is copied. Called with the guest
// paused unless live. It must leave no file behind when it fails. With
// `deferred_flush` non-null (a running guest, no HALT), the writer may return
// once QEMU's stream is complete and store the image's flush there: the
// machine switches the disks with their undo armed (block-commit back),
// resumes the guest and runs the flush before its commit point, so the flush
// is not inside the pause; a flush that fails rolls the snapshot back.
using MemoryWriter =
    std::function<Status(DomainControl &ctl, const std::string &path, bool live, MemoryFlush *deferred_flush)>;

struct ActiveRequest {
    DomainControl *ctl = nullptr;
    const conf::SnapshotDef *def = nullptr;
    const SnapshotPlan *plan = nullptr;
    const conf::DomainDef *live = nullptr;           // the running definition
    std::vector<qemu::DiskNodeNames> graph;          // current block graph
    unsigned next_node_index = 1;
    JobJournal *journal = nullptr;
    JournalFields commit_fields;                     // recorded with the commit
    MemoryWriter memory_writer;                      // external memory only
    // LIVE by the instant method: the guest is stopped, the disks switched and
    // the memory captured by a background-snapshot migration at that instant;
    // QEMU resumes the guest while RAM is written (memory_writer gets live=true
    // and must use the background-snapshot capability).
    bool instant = false;
    std::chrono::milliseconds job_timeout = std::chrono::hours(6);
};

struct ActiveResult {
    std::unique_ptr<conf::DomainDef> live;           // the definition after the snapshot
    std::vector<qemu::DiskNodeNames> graph;
    unsigned next_node_index = 1;
    // For each external disk: target, old source path, new source.
    struct Switched {
        std::string target;
        std::string old_path;
        conf::StorageSource new_src;
    };
    std::vector<Switched> switched;
    bool halted = false;
    bool was_running = false;
    // An error after the commit point (thaw or resume failed): the snapshot
    // exists, the call still fails (libvirt's behaviour).
    std::optional<Error> late_error;
};

// Internal snapshot of a shut-off domain.
[[nodiscard]] Status create_internal_inactive(const conf::SnapshotDef &def, const SnapshotPlan &plan,
                                              const conf::DomainDef &dom, JobJournal *journal,
                                              const JournalFields &commit_fields = {});

// External snapshot of a shut-off domain: returns `dom` with the overlays on top.
[[nodiscard]] Result<std::unique_ptr<conf::DomainDef>> create_external_inactive(
    const conf::SnapshotDef &def, const SnapshotPlan &plan, const conf::DomainDef &dom, JobJournal *journal,
    const JournalFields &commit_fields = {});

// Undo of create_external_inactive's files when the caller cannot commit
// (the configuration could not be saved): removes overlays that did not exist.
void remove_created_overlays(const SnapshotPlan &plan);

[[nodiscard]] Result<ActiveResult> create_internal_active(ActiveRequest req);
[[nodiscard]] Result<ActiveResult> create_external_active(ActiveRequest req);

// The new top layer of a disk after an external snapshot (overlay with the
// old source as read-only backing store).
conf::StorageSource overlay_source(const DiskPlan &plan, const conf::StorageSource &old_top,
                                   std::optional<int> index);

}  // namespace virtsnap::qemu_snapshot
