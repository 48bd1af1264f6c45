// job_recovery.hh - finishing or rolling back, at daemon start-up, a snapshot
// job whose daemon was killed (journals of docs/journal.md, per-step rules in
// docs/snapshots.md "Journal and recovery").
//
// The journal says what the job intended; QEMU and the files say what
// happened. Every handler reconciles the two, and every action it takes can
// be repeated (blockdev-del of a node that is gone, unlink of a missing file,
// cont of a running guest, metadata only when absent), so a crash during
// recovery is recovered by the next start.
//
// snapshot-create:
//
//   read journal ─► which overlays did QEMU switch to? (query-block: top node)
//        │                 │ some / committed                 │ none, not committed
//        │                 ▼                                  ▼
//        │   roll forward: live def + block graph,    roll back: cancel migration,
//        │   persistent def follow the overlays;      blockdev-del added nodes,
//        │   metadata (commit record, or the          unlink overlays and memory
//        │   transaction intent when memory is        we created, internal tag
//        │   complete) else drop memory + record      deleted (QEMU job or qemu-img)
//        ▼                 └───────────────┬──────────────────┘
//   thaw (fsfreeze intended) ─► HALT committed: stop QEMU | we paused it: cont
//
// Guest writes are never discarded: an overlay QEMU has switched to stays the
// active layer; when QEMU is gone and the switch cannot be verified the
// overlay stays too (an overlay nothing wrote to shows its backing file).
//
// snapshot-revert (the domain ends as before the revert or as after it):
//
//   committed? ──no──► internal-online: snapshot-load job? (query-jobs)
//        │                  concluded ok ─► commit record ─► roll forward ─┐
//        │                  failed before loading / never ran ─► roll back │
//        │                  failed while loading ─► guest stays paused     │
//        │             internal-offline: back to the undo tags             │
//        │             external: unlink the new overlays                   │
//        │             roll back: cont what we paused, stop what we started│
//        ▼                                                                 ▼
//   roll forward: stop the old QEMU (no start-qemu yet), kill a half-started
//   one; internal-offline: apply the tag again unless a new QEMU ran; persistent
//   definition (the commit record's, or the snapshot's); start QEMU (memory:
//   from the image) when the revert boots and none runs; resume unless paused;
//   snapshot made current
//
// snapshot-delete (forward from the commit record; nothing to undo before it):
//
//   internal: let QEMU's snapshot-delete job end; tag still on a disk? delete
//             again (QEMU job, or qemu-img when shut off)
//   external, per committed disk: running chain: job ready ─► pivot; O still
//             in the chain QEMU has open ─► block-commit again; else
//             blockdev-del O's nodes. Elsewhere (or QEMU gone before any
//             pivot): qemu-img commit O (O only ever gives B what it holds),
//             rebase -u of images on O
//   then: definitions and stored chains without O, unlink what ImageRefs no
//   longer has, memory image unless shared, metadata removed
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_list.hh"
#include "qemu/domain_status.hh"
#include "qemu/monitor.hh"
#include "util/job_journal.hh"
#include "util/result.hh"

#include <chrono>
#include <memory>
#include <vector>

namespace virtsnap::qemu_snapshot {

// What recovery may see and change of one domain. The daemon implements it
// over DomainObj/DomainProcess; tests over a mock QMP monitor.
class RecoveryTarget {
public:
    virtual ~RecoveryTarget() = default;
    // Null when the domain has no running QEMU (it died, or never ran).
    virtual qemu::Monitor *monitor() = 0;
    // The definition QEMU runs with and its block graph (null/empty when shut off).
    virtual std::shared_ptr<const conf::DomainDef> live_def() = 0;
    virtual std::vector<qemu::DiskNodeNames> block_graph() = 0;
    virtual unsigned next_node_index() = 0;
    virtual Status set_live(std::shared_ptr<const conf::DomainDef> def, std::vector<qemu::DiskNodeNames> graph,
                            unsigned next_node_index) = 0;
    // The persistent definition; null for a transient domain (or none known).
    virtual std::shared_ptr<const conf::DomainDef> persistent_def() = 0;
    virtual Status save_persistent(std::shared_ptr<const conf::DomainDef> def) = 0;
    // Null when the domain is unknown.
    virtual conf::SnapshotList *snapshots() = 0;
    // vCPUs: cont (also out of postmigrate; the second with the reason
    // "from snapshot"), HALT (also: stop the QEMU a revert leaves behind),
    // guest-fsfreeze-thaw.
    virtual Status resume() = 0;
    virtual Status resume_from_snapshot() = 0;
    virtual Status halt() = 0;
    virtual Status thaw() = 0;
    // Revert roll-forward: QEMU started with `def` (snapshot reasons and
    // events), left paused when `paused`; with `memory_file` (a save image)
    // it loads that memory first.
    virtual Status start(const conf::DomainDef &def, bool paused, const std::string &memory_file) = 0;
    // Kills a QEMU of this domain that the daemon is not attached to: a killed
    // daemon was starting it and had not written its status yet.
    virtual Status discard_unattached() = 0;
    // A revert failed while QEMU loaded the snapshot: the guest stays paused
    // and a SUSPENDED/API_ERROR event says so.
    virtual void note_failed_revert() = 0;
};

struct RecoveryOptions {
    // How long to wait for a memory migration QEMU is still writing.
    std::chrono::milliseconds migration_wait = std::chrono::minutes(30);
    std::chrono::milliseconds job_wait = std::chrono::minutes(10);
};

// The handler of "snapshot-create" journals.
[[nodiscard]] Status recover_snapshot_create(RecoveryTarget &target, JobJournal &journal, const JournalState &state,
                                             const RecoveryOptions &options = {});

// The handlers of "snapshot-revert" and "snapshot-delete" journals. They may
// append their own records to `journal` (a commit record once QEMU's job is
// seen to have succeeded, pivot intents).
[[nodiscard]] Status recover_snapshot_revert(RecoveryTarget &target, JobJournal &journal, const JournalState &state,
                                             const RecoveryOptions &options = {});
[[nodiscard]] Status recover_snapshot_delete(RecoveryTarget &target, JobJournal &journal, const JournalState &state,
                                             const RecoveryOptions &options = {});

// Registers the handlers of this file; `target_of` gives the domain of a journal.
void add_recovery_handlers(JournalRecovery &recovery, std::function<RecoveryTarget &(const JournalState &)> target_of,
                           RecoveryOptions options = {});

}  // namespace virtsnap::qemu_snapshot
