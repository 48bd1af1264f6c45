// snapshot_revert.hh - the state machines of virDomainRevertToSnapshot.
//
// The driver (src/daemon/qemu_driver_snapshot_revert.cc) checks flags and the
// snapshot in libvirt's order, picks one of the machines below, and owns what
// is around them (stopping and starting QEMU, definitions, "current"). Every
// machine registers its undo on a Txn before each side effect, records a
// journal intent before it, and has one commit point; the first error is the
// one reported.
//
// Every revert writes a `snapshot-revert` journal (docs/journal.md; records
// and recovery in docs/snapshots.md "Journal and recovery (snapshot-revert)").
// Its commit record is written right before the first step that cannot be
// undone, so a restarted daemon rolls back before it and forward after it;
// the driver records `stop-qemu`, `start-qemu` and `resume` intents around
// the steps it owns.
//
// Internal, QEMU running (snapshot state running/paused; QEMU's snapshot-load
// job instead of libvirt's restart with -loadvm):
//
//   start ─► every disk holds the tag? ──no──► error (nothing touched)
//         ─► (caller, domain shut off) start-qemu: paused, snapshot's <domain>
//         ─► [running] pause: stop (PAUSED_FROM_SNAPSHOT)   [undo: cont]
//         ─► snapshot-load job ─► concluded
//              │ QEMU's error, failed before loading (its own checks):
//              │      undo (cont) ──► error
//              │ QEMU's error after loading began (or unknown):
//              │      guest stays paused, partly_loaded ──► error
//         ══ commit ══ job concluded without error, recorded BEFORE the job
//            is dismissed (a restarted daemon reads the concluded job)
//         ─► (caller) persistent definition; started/from-snapshot; resume
//            unless paused
//
// Internal, shut off (qemu-img snapshot -a on every internal qcow2 disk):
//
//   start ─► every disk holds the tag? ──no──► error
//         ─► [QEMU runs] ══ commit ══ (the running guest is about to be lost)
//            ─► (caller) stop-qemu
//         ─► per disk: save-undo: qemu-img snapshot -c <undo tag>   [undo: -a <undo tag>, -d <undo tag>]
//         ─► per disk: apply: qemu-img snapshot -a <tag> ──fail──► undo all ──► error
//         ══ commit ══ (QEMU was not running) every disk is at the snapshot
//         ─► per disk: qemu-img snapshot -d <undo tag> (failures only logged)
//         ─► (caller) persistent definition, start-qemu when RUNNING/PAUSED
//
// External (disk-only or with memory): the branch the domain leaves is kept.
//
//   start ─► per external disk: create-overlay: qemu-img create -b <snapshot's image>  [undo: unlink]
//         ══ commit ══ (caller) with the new persistent and live definitions
//         ─► (caller) stop-qemu, the new definition saved
//         ─► (caller) memory: start-qemu paused with -incoming from the memory
//            image, then resume unless paused; disk-only: start-qemu only
//            when RUNNING/PAUSED asked for a fresh boot
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_def.hh"
#include "qemu_snapshot/snapshot_create.hh"
#include "qemu_snapshot/txn.hh"
#include "util/job_journal.hh"
#include "util/result.hh"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

// The tag the shut-off revert keeps the pre-revert state under until it commits.
inline constexpr std::string_view kRevertUndoTag = "virtsnap-revert-undo";

// The definition a revert installs: the snapshot's, under the domain's own
// name and uuid.
std::unique_ptr<conf::DomainDef> adopt_snapshot_domain(const conf::DomainDef &src, const std::string &name,
                                                       const Uuid &uuid);

// Shut-off revert undo: back to the undo tag and drop it (nothing when the
// image has no undo tag); dropping it alone. Both can be repeated.
[[nodiscard]] Status restore_revert_undo(const std::string &path);
[[nodiscard]] Status drop_revert_undo(const std::string &path);

// True when QEMU's snapshot-load error is one of the checks load_snapshot
// makes before it touches a disk or the guest's memory; any other error
// (or an unknown wording) means the guest may be partly at the snapshot.
bool snapshot_load_failed_before_loading(std::string_view qemu_error);

// The local qcow2 disks of `dom` that `snap` snapshotted internally.
std::vector<const conf::DomainDisk *> internal_snapshot_disks(const conf::SnapshotDef &snap,
                                                              const conf::DomainDef &dom);

// OPERATION_INVALID "disk '%s' has no internal snapshot '%s'" unless every disk
// holds the tag (read with -U, so a running QEMU's images can be checked).
[[nodiscard]] Status check_internal_tag(const std::vector<const conf::DomainDisk *> &disks, const std::string &tag);

// Internal, shut off: the disks of `dom` (the snapshot's definition) go back
// to `tag`. When the journal is already committed (QEMU was running) the
// commit record is not written again.
[[nodiscard]] Status revert_internal_inactive(const conf::SnapshotDef &snap, const conf::DomainDef &dom,
                                              JobJournal *journal);

struct InternalActiveRevert {
    DomainControl *ctl = nullptr;
    std::string tag;
    std::vector<std::string> devices;  // top format node of every disk with the tag
    std::string vmstate;               // the node whose image holds the VM state
    JobJournal *journal = nullptr;
    std::chrono::milliseconds job_timeout = std::chrono::hours(6);
    // Out: the load failed after QEMU began loading; the guest is left paused.
    bool partly_loaded = false;
};

// Internal, QEMU running: leaves the guest paused at the snapshot.
[[nodiscard]] Status revert_internal_active(InternalActiveRevert &req);

// The path of the new overlay that reverting disk `target` to `snap` puts on
// `base`: "<base minus its suffix>.<snapshot>-revert<N>", the first N free.
std::string revert_overlay_path(const std::string &base, const std::string &snapshot);

struct ExternalRevertResult {
    std::unique_ptr<conf::DomainDef> def;  // `dom` with external disks on their new overlays
    std::vector<std::string> overlays;     // created files
};

// External: creates the new overlays (undo registered on `txn` first) and
// returns the definition that runs on them.
[[nodiscard]] Result<ExternalRevertResult> revert_external_prepare(const conf::SnapshotDef &snap,
                                                                   const conf::DomainDef &dom, Txn &txn,
                                                                   JobJournal *journal);

}  // namespace virtsnap::qemu_snapshot
