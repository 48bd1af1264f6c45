// snapshot_memory.hh - the memory image of an external snapshot: libvirt's
// save-image layout (qemu/save_image.hh) filled by a QMP migration
// (qemu/memory_migration.hh), so `virsh restore` on virtsnapd or libvirt
// reads it.
//
//   SaveImageWriter::create (header "Part", XML, cookie, padding)
//     ─► migrate_memory_to_fd ("snapshot job": progress, abort = migrate_cancel)
//     ─► finalize (header "Save", fsync)
//   any failure ─► the writer's abort(): a file we created is unlinked
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
};

// The <cookie> libvirt writes for a snapshot of a guest without a host-model CPU.
inline constexpr const char *kSnapshotSaveCookie = "<cookie>\n</cookie>\n";

// Whether this QEMU on this host can run a background-snapshot migration
// (the capability exists and QEMU accepts it: userfaultfd write-protect,
// a compatible memory backend). Leaves the capability off. Errors are
// OPERATION_UNSUPPORTED saying why.
[[nodiscard]] Status check_background_snapshot(qemu::Monitor &mon);

[[nodiscard]] Status write_memory_image(qemu::Monitor &mon, const std::string &path, const MemoryImageOptions &opts);

}  // namespace virtsnap::qemu_snapshot
