// snapshot_delete.hh - the state machines of virDomainSnapshotDelete.
//
// The driver (src/daemon/qemu_driver_snapshot_delete.cc) checks flags, walks
// CHILDREN/CHILDREN_ONLY leaves first, and for each snapshot runs one of the
// machines below, then updates definitions and metadata. An image is removed
// only when ImageRefs (image_refs.hh) says nothing else needs it.
//
// Every delete of one snapshot writes a `snapshot-delete` journal; its commit
// record is written before the first change to an image, so a restarted
// daemon rolls forward from it (every step below can be repeated) and, with
// no commit record, has nothing to undo. Records and recovery:
// docs/snapshots.md "Journal and recovery (snapshot-delete)".
//
// Internal, shut off:
//   ══ commit{tag} ══ ─► per disk holding the tag: qemu-img-delete: qemu-img snapshot -d
// Internal, running:
//   ══ commit{tag, device*} ══ ─► snapshot-delete: QEMU's job on every disk holding the tag
//   (deleting a tag cannot be undone, so the commit comes first; QEMU skips a
//   disk without the tag, so the job can be run again. A failure leaves the
//   metadata in place, so the delete can be retried)
//
// External, per disk the snapshot made an overlay O on top of its image B:
//
//   plan (pure) ─► O needed by nothing else?          ──► Drop: unlink O
//              ─► B's only dependent is O, B no top?  ──► Commit (below)
//              ─► otherwise (B is a branch point)     ──► Keep: images stay
//
//   ══ commit{plan: per disk target, mode, O, B, B's format, depth, rebase*} ══
//   Commit, O outside the running chain:
//     qemu-img-commit O into B
//     ─► rebase: images on O: qemu-img rebase -u onto B (B now reads as O did)
//   Commit, O in the running chain (guest keeps running):
//     block-commit  O on top:  active commit ─► ready ─► pivot: job-complete ─► concluded
//                   O below:   block-commit top=O base=B ─► concluded
//     ─► blockdev-del O's nodes; block graph and live definition without O
//   then (caller): definitions and other snapshots: O replaced by B;
//   unlink: O once ImageRefs no longer has it; the memory image unless shared;
//   metadata removed last.
//   A failed job leaves every image usable (B only gained what O held, O
//   stays on top until the pivot); a failure after the commit point is rolled
//   forward by the next start. The pivot intent tells a recovery that finds
//   QEMU gone whether the guest may have written to B already.
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_def.hh"
#include "conf/snapshot_list.hh"
#include "qemu/domain_status.hh"
#include "qemu_snapshot/image_refs.hh"
#include "qemu_snapshot/snapshot_create.hh"
#include "util/job_journal.hh"
#include "util/result.hh"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

// Internal, shut off: drops the tag from every disk of `dom` holding it.
[[nodiscard]] Status delete_internal_inactive(const conf::SnapshotDef &snap, const conf::DomainDef &dom,
                                              JobJournal *journal);

// Internal, running: snapshot-delete job on `devices` (top nodes holding the tag).
[[nodiscard]] Status delete_internal_active(DomainControl &ctl, const std::string &tag,
                                            const std::vector<std::string> &devices, JobJournal *journal,
                                            std::chrono::milliseconds timeout = std::chrono::hours(6));

enum class ExternalDeleteMode { Drop, Commit, Keep };
std::string_view external_delete_mode_name(ExternalDeleteMode m);

struct ExternalDiskDelete {
    std::string target;
    std::string overlay;        // O
    std::string base;           // B
    std::string base_format;
    ExternalDeleteMode mode = ExternalDeleteMode::Keep;
    std::vector<std::string> rebase;  // images on O outside the running chain
    int running_depth = -1;     // O's layer in the running chain, -1 = not in it
};

// Decides per disk what deleting `snap` does. `others` indexes everything but
// `snap` itself; `live` is the running definition (null when shut off).
[[nodiscard]] Result<std::vector<ExternalDiskDelete>> plan_external_delete(const conf::SnapshotDef &snap,
                                                                           const ImageRefs &others,
                                                                           const conf::DomainDef *live);

// Commit of one disk outside the running chain (qemu-img).
[[nodiscard]] Status commit_offline(const ExternalDiskDelete &disk, JobJournal *journal);

// Commit of one disk in the running chain. Updates `graph` (O's layer gone).
[[nodiscard]] Status commit_online(DomainControl &ctl, const ExternalDiskDelete &disk,
                                   std::vector<qemu::DiskNodeNames> &graph, JobJournal *journal,
                                   std::chrono::milliseconds timeout = std::chrono::hours(6));

// The plan as the commit record carries it, and back.
JournalFields external_delete_commit_fields(const std::vector<ExternalDiskDelete> &plan);
[[nodiscard]] Result<std::vector<ExternalDiskDelete>> external_delete_from_commit(const JournalFields &fields);

// Everything that still needs images (image_refs.hh): the definitions and
// every snapshot of `list` but `skip`.
ImageRefs collect_image_refs(const conf::DomainDef *persistent, const conf::DomainDef *live,
                             const conf::SnapshotList &list, std::string_view skip);

// The committed overlays of `plan` dropped from `def` (true when it changed)
// and from the stored chains of every snapshot of `list` but `skip`.
bool drop_committed_layers(conf::DomainDef &def, const std::vector<ExternalDiskDelete> &plan);
void drop_committed_layers_in_snapshots(conf::SnapshotList &list, std::string_view skip,
                                        const std::vector<ExternalDiskDelete> &plan);

// Unlinks the overlays of `plan` that `after` (rebuilt once the definitions
// dropped them) no longer has, and `snap`'s memory image unless another
// snapshot of `list` names it. Each unlink is journalled; a missing file is
// not an error, so it can be repeated.
void remove_unreferenced_images(const conf::SnapshotDef &snap, const std::vector<ExternalDiskDelete> &plan,
                                const ImageRefs &after, const conf::SnapshotList &list, JobJournal *journal);

// Removes the layer `path` from a chain: its backing takes its place, or,
// when the chain is not spelled out, `base` (of `base_format`) does. True when
// it was found.
bool drop_chain_layer(conf::StorageSource &top, const std::string &path, const std::string &base,
                      const std::string &base_format);
// drop_chain_layer on every disk of `def`.
bool drop_layer_in_domain(conf::DomainDef &def, const std::string &path, const std::string &base,
                          const std::string &base_format);

}  // namespace virtsnap::qemu_snapshot
