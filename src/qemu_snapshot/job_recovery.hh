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
    // vCPUs: cont (also out of postmigrate), HALT, guest-fsfreeze-thaw.
    virtual Status resume() = 0;
    virtual Status halt() = 0;
    virtual Status thaw() = 0;
};

struct RecoveryOptions {
    // How long to wait for a memory migration QEMU is still writing.
    std::chrono::milliseconds migration_wait = std::chrono::minutes(30);
    std::chrono::milliseconds job_wait = std::chrono::minutes(10);
};

// The handler of "snapshot-create" journals.
[[nodiscard]] Status recover_snapshot_create(RecoveryTarget &target, JobJournal &journal, const JournalState &state,
                                             const RecoveryOptions &options = {});

// Registers the handlers of this file; `target_of` gives the domain of a journal.
void add_recovery_handlers(JournalRecovery &recovery, std::function<RecoveryTarget &(const JournalState &)> target_of,
                           RecoveryOptions options = {});

}  // namespace virtsnap::qemu_snapshot
