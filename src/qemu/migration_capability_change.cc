// migration_capability_change.cc - switching migration capabilities for one
// migration and back (see migration_capability_change.hh).

#include "qemu/migration_capability_change.hh"

#include "qemu/capabilities.hh"

#define LOG_MODULE "qemu.migration"
#include "util/log.hh"

#include <libvirt/libvirt.h>

namespace virtsnap::qemu {

Result<std::set<std::string>> known_migration_capabilities(Monitor &monitor) {
    if (auto probed = monitor.caps()) return probed->migration_capabilities;
    std::set<std::string> known;
    for (const auto &c : TRY(monitor.query_migrate_capabilities())) known.insert(c.capability);
    return known;
}

Result<MigrationCapabilityChange> MigrationCapabilityChange::query(Monitor &monitor) {
    MigrationCapabilityChange change;
    change.current_ = TRY(monitor.query_migrate_capabilities());
    for (const auto &c : change.current_) change.supported_.insert(c.capability);
    return change;
}

Status MigrationCapabilityChange::require(const std::string &name) {
    if (!supported_.count(name))
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "QEMU does not support migration capability '" + name + "'");
    want(name, true);
    return ok();
}

void MigrationCapabilityChange::want(const std::string &name, bool state) {
    for (const auto &c : current_) {
        if (c.capability != name) continue;
        // A second wish for the same capability replaces the first.
        for (size_t i = 0; i < set_.size(); ++i)
            if (set_[i].capability == name) {
                set_.erase(set_.begin() + long(i));
                restore_.erase(restore_.begin() + long(i));
                break;
            }
        if (c.state != state) {
            set_.push_back({name, state});
            restore_.push_back({name, c.state});
        }
        return;
    }
}

Status MigrationCapabilityChange::apply(Monitor &monitor) {
    if (set_.empty()) return ok();
    TRY(monitor.migrate_set_capabilities(set_));
    applied_ = true;
    return ok();
}

void MigrationCapabilityChange::restore(Monitor &monitor) {
    if (!applied_) return;
    applied_ = false;
    if (Status st = monitor.migrate_set_capabilities(restore_); !st)
        VS_WARN("cannot restore migration capabilities: %s", st.error().message().c_str());
}

}  // namespace virtsnap::qemu
