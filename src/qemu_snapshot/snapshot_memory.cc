// snapshot_memory.cc - memory images of external snapshots.

#include "qemu_snapshot/snapshot_memory.hh"

#include "qemu/capabilities.hh"
#include "qemu/guest_ram.hh"
#include "qemu/memory_relay.hh"
#include "qemu/migration_capability_change.hh"
#include "qemu/migration_gate.hh"
#include "qemu/save_image.hh"
#include "util/job_journal.hh"
#include "util/file.hh"
#include "util/raii.hh"

#define LOG_MODULE "qemu_snapshot.memory"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdlib>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

namespace virtsnap::qemu_snapshot {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

thread_local InstantSwitch *t_switch = nullptr;

std::mutex g_mark_mu;
std::set<const qemu::Monitor *> g_marked;

// How long the gated order waits for QEMU's migration thread to reach the
// gate (its populate walk over guest RAM: well under a second for 4 GiB).
// Past that the switch runs anyway: the capture stays right, the pause holds
// what is left of the walk.
constexpr auto kGateWait = std::chrono::seconds(30);

// QEMU's migration has stopped running (failed, cancelled, or gone).
bool migration_over(qemu::Monitor &mon) {
    auto info = mon.query_migrate();
    return !info || info->status == "failed" || info->status == "cancelled" || info->status == "completed";
}

// Stop-first order: QEMU 7.2 resumes the guest by itself once it has captured
// the device state and write-protected RAM, but later QEMUs resume only a
// guest that ran when `migrate` came (QEMU 10 restores the run state it found),
// which would keep the guest stopped until the whole image is written. So as
// soon as the image holds more than QEMU's set-up section, the stream carries
// RAM pages: QEMU's migration thread has captured the guest and let go of the
// main lock, and a `cont` resumes the guest after the snapshot's instant.
void resume_once_ram_streams(qemu::Monitor &mon, const qemu::SaveImageWriter &writer) {
    constexpr off_t kSetupSection = 256 << 10;  // RAM block list and headers: a few KiB
    const off_t ram_seen = off_t(writer.stream_offset()) + kSetupSection;
    const auto deadline = Clock::now() + std::chrono::minutes(1);
    for (unsigned i = 1;; ++i) {
        struct stat st;
        if (::fstat(writer.fd(), &st) == 0 && st.st_size >= ram_seen) break;
        // Failed or over (a tiny guest): the undo or the caller resumes.
        if (i % 50 == 0 && migration_over(mon)) return;
        if (Clock::now() > deadline) {
            VS_WARN("no RAM in the snapshot's stream after a minute: the guest resumes when the image is complete");
            return;
        }
        std::this_thread::sleep_for(milliseconds(1));
    }
    auto status = mon.query_status();
    if (!status || status->status != "paused") return;  // QEMU resumed it, as 7.2 does
    VS_DEBUG("QEMU left the guest paused after its capture: resuming it");
    // Not fatal: the stream goes on, and the job resumes the guest at its end.
    if (auto st = mon.cont(); !st) VS_WARN("cannot resume the guest during its snapshot: %s", st.error().message().c_str());
}

// The instant method's migration: qemu/memory_migration.hh's sequence with
// everything before `migrate` done while the guest runs, and `sw` (stop + the
// transaction) run at the last moment before QEMU captures the guest:
//   stop-first  sw, then `migrate`; QEMU's RAM set-up runs inside the pause;
//   gated       (QemuCaps::background_snapshot_gate_safe) `migrate` into a
//               shut gate (qemu/migration_gate.hh), wait until QEMU's thread is
//               held there, sw, open the gate; virtsnap-relay writes the
//               stream into the image (qemu/memory_relay.hh).
// Returns the final figures.
Result<qemu::MigrationProgress> instant_migration(qemu::Monitor &mon, qemu::SaveImageWriter &writer,
                                                  const MemoryImageOptions &opts, InstantSwitch &sw,
                                                  std::optional<pid_t> &qemu_pid) {
    const auto started = Clock::now();
    const std::string job = "snapshot job";
    auto probed = mon.caps();
    // VIRTSNAP_SNAPSHOT_GATE=0 keeps the stop-first order (benches compare both).
    const char *gate_env = std::getenv("VIRTSNAP_SNAPSHOT_GATE");
    const bool gated = probed && probed->background_snapshot_gate_safe && !(gate_env && std::string(gate_env) == "0");
    auto caps = TRY(qemu::MigrationCapabilityChange::query(mon));
    for (const auto &name : opts.capabilities) TRY(caps.require(name));
    caps.want("events", true);
    // A sparse image's settings, left on by a job the daemon did not live to
    // finish, cannot go with this stream.
    caps.want("mapped-ram", false);
    caps.want("multifd", false);
    std::optional<int64_t> old_bandwidth;
    old_bandwidth = TRY(mon.query_migrate_parameters()).max_bandwidth;

    // Declared before the undo: its destructor (discard, then let the
    // stream end) runs after closefd has released QEMU's copy of the pipe.
    std::optional<qemu::MemoryRelay> relay;
    bool bandwidth_set = false, fd_passed = false;
    auto restore = [&] {
        if (fd_passed) (void)mon.closefd("migrate");  // fails harmlessly once migrate consumed it
        if (bandwidth_set && old_bandwidth)
            if (auto st = mon.migrate_set_parameters(qemu::QDict{{"max-bandwidth", qemu::QValue(*old_bandwidth)}}); !st)
                VS_WARN("cannot restore migration bandwidth: %s", st.error().message().c_str());
        caps.restore(mon);
    };
    ScopeExit undo(restore);
    TRY(caps.apply(mon));
    TRY(mon.migrate_set_parameters(qemu::QDict{{"max-bandwidth", qemu::QValue(qemu::kMigrationUnlimitedBandwidth)}}));
    bandwidth_set = true;
    // Every instant snapshot streams through the gate pipe and virtsnap-relay,
    // gated or not: the relay outlives the daemon, and dropping the stream
    // through it is how a job gives up (see the loop below).
    {
        auto gate = TRY(qemu::MigrationGate::shut());
        relay = TRY(qemu::MemoryRelay::start(gate.take_read_end(), writer.fd(), writer.stream_offset(),
                                             qemu::MigrationGate::kFillerBytes));
        TRY(mon.getfd(gate.write_end(), "migrate"));
        fd_passed = true;
        // QEMU holds the pipe from now until it closes the stream: the one
        // reliable way to find its pid from here (the gate watch, the THP
        // re-collapse).
        qemu_pid = qemu::guest_ram::qemu_holding_file(gate.write_end());
    }

    qemu::MigrationEventWaker events(mon);
    if (!gated) {
        TRY(relay->open_gate());
        // ── the guest-visible pause: stop, the transaction, migrate, QEMU's
        //    set-up and capture; then the guest resumes ──
        TRY(sw.run());
        TRY(mon.migrate("fd:migrate"));
        fd_passed = false;
        resume_once_ram_streams(mon, writer);
    } else {
        TRY(mon.migrate("fd:migrate"));
        fd_passed = false;
        test_crash_point("gate-shut");
        bool held = qemu_pid && qemu::wait_until_gate_holds(*qemu_pid, kGateWait, [&] { return migration_over(mon); });
        if (!held) VS_INFO("QEMU's migration was not seen held at the gate: switching anyway");
        // ── the guest-visible pause: stop, the transaction, the gate opens;
        //    QEMU captures device state, write-protects RAM, resumes ──
        if (Status switched = sw.run(); !switched) {
            // Let QEMU's stream complete into nothing rather than break it.
            (void)relay->discard();
            (void)qemu::wait_for_migration_end(mon, std::chrono::minutes(10));
            return fail(std::move(switched).error());
        }
        test_crash_point("gate-switched");
        TRY(relay->open_gate());
        test_crash_point("gate-open");
    }
    VS_DEBUG("instant migration started%s", gated ? " (gated)" : "");

    // Giving up (domjobabort, the time limit) abandons the relay instead of
    // migrate_cancel: QEMU 7.2 cannot take another background snapshot after
    // one was cancelled (measured: the next one stays active with the guest
    // paused). QEMU's snapshot then completes into nothing; the image,
    // truncated by the relay, is removed by the writer's abort.
    bool abandoned = false, timed_out = false;
    for (;;) {
        auto info = mon.query_migrate();
        if (!info) return fail(std::move(info).error());
        qemu::MigrationProgress last = qemu::migration_progress(*info, started);
        if (opts.tracker && !abandoned) opts.tracker->update(last);
        const std::string &s = info->status;
        if (s == "completed" && !abandoned) {
            undo.release();
            restore();
            TRY(relay->finish(std::chrono::minutes(5)));
            return last;
        }
        if (s == "completed" || s == "failed" || s == "cancelled") {
            if (timed_out) return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU, job + ": timed out");
            if (s == "cancelled" || abandoned)
                return fail(VIR_ERR_OPERATION_ABORTED, VIR_FROM_QEMU, job + ": canceled by client");
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                        job + ": " + info->error_desc.value_or("unexpectedly failed"));
        }
        if (!abandoned) {
            bool abort = opts.abort_requested && opts.abort_requested();
            if (!abort && Clock::now() - started > std::chrono::hours(6)) abort = timed_out = true;
            if (abort) {
                VS_INFO("abandoning the instant snapshot's stream (%s)", timed_out ? "timeout" : "abort requested");
                relay->abandon();
                abandoned = true;
            }
        }
        events.wait(milliseconds(100));
    }
}

}  // namespace

InstantSwitch::InstantSwitch(Fn fn) : fn_(std::move(fn)), outer_(t_switch) { t_switch = this; }

InstantSwitch::~InstantSwitch() { t_switch = outer_; }

InstantSwitch *InstantSwitch::current() { return t_switch; }

Status InstantSwitch::run() {
    if (ran_) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "instant switch run twice");
    ran_ = true;
    return fn_();
}

bool take_instant_writer_mark(qemu::Monitor &mon) {
    std::lock_guard lk(g_mark_mu);
    return g_marked.erase(&mon) > 0;
}

Status check_background_snapshot(qemu::Monitor &mon) {
    if (!TRY(qemu::known_migration_capabilities(mon)).count("background-snapshot"))
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "instant snapshots are not supported: QEMU lacks the background-snapshot migration capability");
    if (auto st = mon.migrate_set_capabilities({{"background-snapshot", true}}); !st)
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "instant snapshots are not supported on this host: " + st.error().detail);
    TRY(mon.migrate_set_capabilities({{"background-snapshot", false}}));
    std::lock_guard lk(g_mark_mu);
    g_marked.insert(&mon);
    return ok();
}

Status check_memory_image_room(const std::string &memory_file, uint64_t ram_bytes) {
    // Device state and the save image header are small next to RAM.
    constexpr uint64_t kMargin = 16ull << 20;
    std::string dir = file::dirname(memory_file);
    struct statvfs fs;
    if (::statvfs(dir.c_str(), &fs) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot get free space of '" + dir + "'"));
    uint64_t room = uint64_t(fs.f_bavail) * fs.f_frsize;
    uint64_t need = ram_bytes + kMargin;
    if (room >= need) return ok();
    return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                "not enough free space for the memory image of an instant snapshot: '" + dir + "' has " +
                    std::to_string(room >> 20) + " MiB free, the guest's memory needs up to " +
                    std::to_string(need >> 20) + " MiB");
}

Status write_memory_image(qemu::Monitor &mon, const std::string &path, const MemoryImageOptions &opts) {
    qemu::SaveImageWriter::Options wo;
    wo.xml = opts.domain_xml;
    wo.cookie = std::string(kSnapshotSaveCookie);
    wo.was_running = opts.was_running;
    InstantSwitch *sw = InstantSwitch::current();
    bool background =
        std::find(opts.capabilities.begin(), opts.capabilities.end(), "background-snapshot") != opts.capabilities.end();
    if (opts.mapped_ram && background)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "a background snapshot cannot write a sparse image");
    if (opts.mapped_ram) wo.format = qemu::SaveImageHeader::kSparse;
    auto writer = TRY(qemu::SaveImageWriter::create(path, wo));
    if (sw && background && !sw->ran()) {
        std::optional<pid_t> pid;
        auto migrated = instant_migration(mon, writer, opts, *sw, pid);
        if (!migrated) {
            writer.abort();
            return fail(std::move(migrated).error());
        }
        TRY(writer.finalize());
        // Write protection split the guest RAM's huge pages: put them back
        // while nobody waits, so that the next snapshot's pause stays short.
        if (pid) qemu::guest_ram::collapse_in_background(*pid, migrated->total);
        return ok();
    }
    qemu::MemoryMigrationOptions mo;
    mo.job_name = "snapshot job";
    mo.abort_requested = opts.abort_requested;
    mo.tracker = opts.tracker;
    mo.capabilities = opts.capabilities;
    mo.mapped_ram = opts.mapped_ram;
    mo.direct_io = opts.direct_io;
    auto migrated = qemu::migrate_memory_to_fd(mon, writer.fd(), mo);
    if (!migrated) {
        writer.abort();
        return fail(std::move(migrated).error());
    }
    if (opts.deferred_flush && writer.finalize_deferrable()) {
        // Unflushed until the caller runs it; dropped unrun, the writer's
        // destructor removes the image.
        auto held = std::make_shared<qemu::SaveImageWriter>(std::move(writer));
        *opts.deferred_flush = [held] { return held->finalize(); };
        return ok();
    }
    return writer.finalize();
}

}  // namespace virtsnap::qemu_snapshot
