// snapshot_revert.hh - the state machines of virDomainRevertToSnapshot.
//
// The driver (src/daemon/qemu_driver_snapshot_revert.cc) checks flags and the
// snapshot in libvirt's order, picks one of the machines below, and owns what
// is around them (stopping and starting QEMU, definitions, "current"). Every
// machine registers its undo on a Txn before each side effect, records a
// journal intent before it, and has one commit point; the first error is the
// one reported.
//
// Internal, QEMU running (snapshot state running/paused; QEMU's snapshot-load
// job instead of libvirt's restart with -loadvm):
//
//   start ─► every disk holds the tag? ──no──► error (nothing touched)
//         ─► [running] stop (PAUSED_FROM_SNAPSHOT)        [undo: cont]
//         ─► snapshot-load job ──fails──► undo ──► error
//         ══ commit ══ job concluded without error (guest is at the snapshot)
//         ─► (caller) started/from-snapshot; cont unless paused
//
// Internal, shut off (qemu-img snapshot -a on every internal qcow2 disk):
//
//   start ─► every disk holds the tag? ──no──► error
//         ─► per disk: qemu-img snapshot -c <undo tag>    [undo: -a <undo tag>, -d <undo tag>]
//         ─► per disk: qemu-img snapshot -a <tag> ──fail──► undo all ──► error
//         ══ commit ══ every disk is at the snapshot
//         ─► per disk: qemu-img snapshot -d <undo tag> (failures only logged)
//
// External (disk-only or with memory): the branch the domain leaves is kept.
//
//   start ─► per external disk: qemu-img create -b <snapshot's image>  [undo: unlink]
//         ══ commit ══ (caller) QEMU stopped, the new definition saved
//         ─► (caller) memory: QEMU started paused with -incoming from the
//            memory image, then cont unless paused; disk-only: shut off
//            unless RUNNING/PAUSED asked for a fresh boot
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

// The local qcow2 disks of `dom` that `snap` snapshotted internally.
std::vector<const conf::DomainDisk *> internal_snapshot_disks(const conf::SnapshotDef &snap,
                                                              const conf::DomainDef &dom);

// OPERATION_INVALID "disk '%s' has no internal snapshot '%s'" unless every disk
// holds the tag (read with -U, so a running QEMU's images can be checked).
[[nodiscard]] Status check_internal_tag(const std::vector<const conf::DomainDisk *> &disks, const std::string &tag);

// Internal, shut off: the disks of `dom` (the snapshot's definition) go back to `tag`.
[[nodiscard]] Status revert_internal_inactive(const conf::SnapshotDef &snap, const conf::DomainDef &dom,
                                              JobJournal *journal);

struct InternalActiveRevert {
    DomainControl *ctl = nullptr;
    std::string tag;
    std::vector<std::string> devices;  // top format node of every disk with the tag
    std::string vmstate;               // the node whose image holds the VM state
    JobJournal *journal = nullptr;
    std::chrono::milliseconds job_timeout = std::chrono::hours(6);
};

// Internal, QEMU running: leaves the guest paused at the snapshot.
[[nodiscard]] Status revert_internal_active(const InternalActiveRevert &req);

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
