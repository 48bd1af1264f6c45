// snapshot_delete.hh - the state machines of virDomainSnapshotDelete.
//
// The driver (src/daemon/qemu_driver_snapshot_delete.cc) checks flags, walks
// CHILDREN/CHILDREN_ONLY leaves first, and for each snapshot runs one of the
// machines below, then updates definitions and metadata. An image is removed
// only when ImageRefs (image_refs.hh) says nothing else needs it.
//
// Internal, shut off:   per disk holding the tag: qemu-img snapshot -d
// Internal, running:    QEMU's snapshot-delete job on every disk holding the tag
//   (deleting a tag cannot be undone; both are their own commit point and a
//   failure leaves the metadata in place, so the delete can be retried)
//
// External, per disk the snapshot made an overlay O on top of its image B:
//
//   plan (pure) ─► O needed by nothing else?          ──► Drop: unlink O
//              ─► B's only dependent is O, B no top?  ──► Commit (below)
//              ─► otherwise (B is a branch point)     ──► Keep: images stay
//
//   Commit, O outside the running chain:
//     ══ commit ══ (journal) qemu-img commit O into B
//     ─► images on O: qemu-img rebase -u onto B (B now reads as O did)
//     ─► (caller) definitions and other snapshots: O replaced by B; unlink O
//   Commit, O in the running chain (guest keeps running):
//     ══ commit ══ O on top:  block-commit (active) ─► ready ─► job-complete (pivot)
//                  O below:   block-commit top=O base=B ─► concluded
//     ─► blockdev-del O's nodes; block graph and live definition without O
//   A failed job before it changed anything leaves every image as it was; a
//   failure after the commit point is rolled forward (the commit is
//   idempotent: B only gains what O held, and O stays on top until unlinked).
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_def.hh"
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

// Removes the layer `path` from a chain: its backing takes its place, or,
// when the chain is not spelled out, `base` (of `base_format`) does. True when
// it was found.
bool drop_chain_layer(conf::StorageSource &top, const std::string &path, const std::string &base,
                      const std::string &base_format);
// drop_chain_layer on every disk of `def`.
bool drop_layer_in_domain(conf::DomainDef &def, const std::string &path, const std::string &base,
                          const std::string &base_format);

}  // namespace virtsnap::qemu_snapshot
