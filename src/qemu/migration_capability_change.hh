// migration_capability_change.hh - the migration capabilities one outgoing
// migration switches, and putting them back afterwards.
//
// Save, managed save, memory snapshots (memory_migration.hh) and instant
// snapshots (qemu_snapshot/snapshot_memory.cc) all start from QEMU's current
// capabilities, change a few for their stream and must leave QEMU as they
// found it, because another client (or a later job) may rely on what was set.
// Only the capabilities whose state actually changes are sent, and only those
// are put back.
#pragma once

#include "qemu/monitor.hh"
#include "util/result.hh"

#include <set>
#include <string>
#include <vector>

namespace virtsnap::qemu {

// The migration capabilities this QEMU knows: its binary's probe when the
// monitor has one (they do not depend on the machine, and a check before a
// guest pause saves the round trip), else query-migrate-capabilities.
[[nodiscard]] Result<std::set<std::string>> known_migration_capabilities(Monitor &monitor);

class MigrationCapabilityChange {
public:
    // QEMU's capabilities as they are now (query-migrate-capabilities).
    [[nodiscard]] static Result<MigrationCapabilityChange> query(Monitor &monitor);

    // The capabilities this QEMU knows.
    const std::set<std::string> &supported() const { return supported_; }

    // `name` switched on; VIR_ERR_OPERATION_UNSUPPORTED naming it when this
    // QEMU lacks it.
    [[nodiscard]] Status require(const std::string &name);
    // `name` switched to `state` if QEMU has it; nothing otherwise.
    void want(const std::string &name, bool state);

    // Sends the changes (migrate-set-capabilities), if any.
    [[nodiscard]] Status apply(Monitor &monitor);
    // Puts back what apply() changed; a failure is logged, not returned, as
    // restoring runs on the way out of a job that already has its outcome.
    void restore(Monitor &monitor);

private:
    std::vector<MigrationCapability> current_;
    std::set<std::string> supported_;
    std::vector<MigrationCapability> set_, restore_;
    bool applied_ = false;
};

}  // namespace virtsnap::qemu
