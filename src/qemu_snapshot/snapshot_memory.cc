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
#include <deque>
#include <map>
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

// Whether the daemon's environment sets `name` to `value` (the orders' knobs).
bool env_is(const char *name, const char *value) {
    const char *env = std::getenv(name);
    return env && std::string(env) == value;
}

// QEMU's migration has stopped running (failed, cancelled, or gone).
bool migration_over(qemu::Monitor &mon) {
    auto info = mon.query_migrate();
    return !info || info->status == "failed" || info->status == "cancelled" || info->status == "completed";
}

// Stop-first and walk-overlap orders: QEMU 7.2 resumes the guest by itself
// once it has captured the device state and write-protected RAM, but later
// QEMUs resume only a guest that ran when QEMU stopped it (QEMU 10 restores
// the run state it found), which would keep the guest stopped until the whole
// image is written. So as soon as the image holds more than QEMU's set-up
// section, the stream carries RAM pages: QEMU's migration thread has captured
// the guest and let go of the main lock, and resuming the guest then comes
// after the snapshot's instant. `resume` is asked to: with `known_paused`
// (walk-overlap: QEMU found the guest stopped) without asking QEMU first.
void resume_once_ram_streams(qemu::Monitor &mon, const qemu::SaveImageWriter &writer, bool known_paused,
                             const std::function<Status()> &resume) {
    constexpr off_t kSetupSection = 256 << 10;  // RAM block list and headers: a few KiB
    const off_t ram_seen = off_t(writer.stream_offset()) + kSetupSection;
    const auto deadline = Clock::now() + std::chrono::minutes(1);
    for (unsigned i = 1;; ++i) {
        struct stat st;
        if (::fstat(writer.fd(), &st) == 0 && st.st_size >= ram_seen) break;
        // Failed or over (a tiny guest): the undo or the caller resumes.
        if (i % 250 == 0 && migration_over(mon)) return;
        if (Clock::now() > deadline) {
            VS_WARN("no RAM in the snapshot's stream after a minute: the guest resumes when the image is complete");
            return;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!known_paused) {
        auto status = mon.query_status();
        if (!status || status->status != "paused") return;  // QEMU resumed it, as 7.2 does
    }
    VS_DEBUG("QEMU left the guest paused after its capture: resuming it");
    // Not fatal: the stream goes on, and the job resumes the guest at its end.
    if (auto st = resume(); !st) VS_WARN("cannot resume the guest during its snapshot: %s", st.error().message().c_str());
}

// The walk-overlap order's memory: for each QEMU (by pid), how long its last
// background snapshots took from `migrate` to the end of QEMU's walk over guest
// RAM and set-up, in wall-clock milliseconds: until the MIGRATION "active"
// event where the daemon saw it with the guest running (the walk-overlap
// order), else the set-up time QEMU reported (query-migrate's "setup-time";
// stop-first: walked with the guest stopped, which is quicker).
class WalkHistory {
public:
    static constexpr size_t kKept = 3;
    // The least of the walks kept, once there are two: the next walk is timed
    // against it. One walk alone can be far off (570 ms against 13 ms at
    // 4 GiB, while the last snapshot's huge pages were still being re-collapsed),
    // and a stop timed by a long one comes too late.
    std::optional<int64_t> estimate_ms(pid_t pid) {
        std::lock_guard lk(mu_);
        auto it = walks_.find(pid);
        if (it == walks_.end() || it->second.size() < 2) return std::nullopt;
        return *std::min_element(it->second.begin(), it->second.end());
    }
    // A QEMU's first background snapshot walks RAM the guest never touched,
    // mapping it as it goes: several times slower than the walks after it
    // (120 ms against 20 ms at 4 GiB). Its figure is left out.
    void record(pid_t pid, int64_t ms) {
        std::lock_guard lk(mu_);
        // Pids of QEMUs long gone, before a reused one could inherit them.
        if (seen_.size() > 64)
            for (auto it = seen_.begin(); it != seen_.end();) {
                if (::access(("/proc/" + std::to_string(*it)).c_str(), F_OK) == 0) {
                    ++it;
                    continue;
                }
                walks_.erase(*it);
                it = seen_.erase(it);
            }
        if (seen_.insert(pid).second) return;
        auto &kept = walks_[pid];
        kept.push_back(ms);
        if (kept.size() > kKept) kept.pop_front();
    }

private:
    std::mutex mu_;
    std::map<pid_t, std::deque<int64_t>> walks_;
    std::set<pid_t> seen_;
};

WalkHistory g_walks;

// The walk-overlap order sends `stop` this share of the estimate, less the
// lead, after `migrate`. QEMU's walk is memory-bound and shares the CPUs with
// the guest: measured on QEMU 10.0.2, walks of one QEMU took 3-4 ms at 1 GiB
// and 13.7-18.2 ms at 4 GiB of wall time, and longer while the guest runs than
// while it is stopped. The lead covers our wake-up and `stop` reaching QEMU's
// main loop under load: at 1 GiB a stop sent 2-3 ms after `migrate` came too
// late 2 times in 5.
constexpr int64_t kWalkShareNum = 17, kWalkShareDen = 20, kWalkLeadMs = 2;
// Below this the walk is too short to land in reliably and the stop-first
// order runs: on 2 busy cores (the guest's vCPU and QEMU's walk) our thread and
// QEMU's main loop can each wait a scheduler slice (4 ms at HZ=250) before
// `stop` takes effect; at 1 GiB (walks of 4-5 ms) stops sent 0-1 ms after
// `migrate` still came too late 2 times in 5. Guests from about 2.5 GiB walk
// longer. VIRTSNAP_TEST_WALK_MIN_MS lowers it (tests at 1 GiB).
constexpr int64_t kMinWalkMs = 8;

int64_t min_walk_ms() {
    const char *env = std::getenv("VIRTSNAP_TEST_WALK_MIN_MS");
    return env && *env ? std::strtoll(env, nullptr, 10) : kMinWalkMs;
}

// Which came first after `migrate`: a STOP event, or the MIGRATION event that
// says "active". QEMU's migration thread sets "active" after its set-up and
// only then stops the guest itself; events reach us in the order QEMU emitted
// them, before the reply to our `stop`. So a first STOP ahead of "active" is
// ours, and QEMU found the guest stopped.
class StopBeforeActive {
public:
    explicit StopBeforeActive(qemu::Monitor &mon) : mon_(mon) {
        stop_sub_ = mon_.subscribe("STOP", [this](const qemu::QmpEvent &) {
            std::lock_guard lk(mu_);
            if (!stop_seen_) stop_first_ = !active_at_;
            stop_seen_ = true;
        });
        migration_sub_ = mon_.subscribe("MIGRATION", [this](const qemu::QmpEvent &ev) {
            auto parsed = qemu::parse_migration_event(ev);
            std::lock_guard lk(mu_);
            if (parsed && parsed->status == "active" && !active_at_) active_at_ = Clock::now();
        });
    }
    ~StopBeforeActive() {
        mon_.unsubscribe(stop_sub_);
        mon_.unsubscribe(migration_sub_);
    }
    StopBeforeActive(const StopBeforeActive &) = delete;
    StopBeforeActive &operator=(const StopBeforeActive &) = delete;

    bool stop_came_first() {
        std::lock_guard lk(mu_);
        return stop_first_;
    }
    // Milliseconds from `since` until "active" came (QEMU's walk and set-up
    // were over), if it did.
    std::optional<int64_t> ms_to_active(Clock::time_point since) {
        std::lock_guard lk(mu_);
        if (!active_at_) return std::nullopt;
        return std::chrono::duration_cast<milliseconds>(*active_at_ - since).count();
    }

private:
    qemu::Monitor &mon_;
    qemu::Monitor::SubscriptionId stop_sub_ = 0, migration_sub_ = 0;
    std::mutex mu_;
    bool stop_seen_ = false, stop_first_ = false;
    std::optional<Clock::time_point> active_at_;
};

// The instant method's migration: qemu/memory_migration.hh's sequence with
// everything before `migrate` done while the guest runs, and `sw` (stop + the
// transaction) run at the last moment before QEMU captures the guest:
//   stop-first  sw, then `migrate`; QEMU's RAM set-up runs inside the pause;
//   gated       (QemuCaps::background_snapshot_gate_safe) `migrate` into a
//               shut gate (qemu/migration_gate.hh), wait until QEMU's thread is
//               held there, sw, open the gate; virtsnap-relay writes the
//               stream into the image (qemu/memory_relay.hh);
//   walk-overlap `migrate`, then sw's stop timed into QEMU's walk; its
//               transaction once the stop proved to come first, or else
//               the stream dropped and stop-first again (snapshot_memory.hh).
// Returns the final figures.
Result<qemu::MigrationProgress> instant_migration(qemu::Monitor &mon, qemu::SaveImageWriter &writer,
                                                  const MemoryImageOptions &opts, InstantSwitch &sw,
                                                  std::optional<pid_t> &qemu_pid) {
    const auto started = Clock::now();
    const std::string job = "snapshot job";
    auto probed = mon.caps();
    // VIRTSNAP_SNAPSHOT_GATE=0 keeps the stop-first order (benches compare both).
    const bool gated = probed && probed->background_snapshot_gate_safe && !env_is("VIRTSNAP_SNAPSHOT_GATE", "0");
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
    auto start_stream = [&]() -> Status {
        auto gate = TRY(qemu::MigrationGate::shut());
        relay = TRY(qemu::MemoryRelay::start(gate.take_read_end(), writer.fd(), writer.stream_offset(),
                                             qemu::MigrationGate::kFillerBytes));
        TRY(mon.getfd(gate.write_end(), "migrate"));
        fd_passed = true;
        // QEMU holds the pipe from now until it closes the stream: the one
        // reliable way to find its pid from here (the gate watch, the walk
        // history, the THP re-collapse).
        qemu_pid = qemu::guest_ram::qemu_holding_file(gate.write_end());
        return ok();
    };
    TRY(start_stream());

    qemu::MigrationEventWaker events(mon);
    std::optional<int64_t> walk_estimate;
    if (!gated && qemu_pid) walk_estimate = g_walks.estimate_ms(*qemu_pid);
    const bool overlap =
        walk_estimate && *walk_estimate >= min_walk_ms() && !env_is("VIRTSNAP_SNAPSHOT_WALK_OVERLAP", "0");
    // The walk as the walk-overlap order saw it (ms from `migrate` to "active").
    std::optional<int64_t> walk_seen;
    // Stop-first: the switch, then `migrate`; QEMU's walk runs inside the pause.
    auto stop_first = [&]() -> Status {
        TRY(relay->open_gate());
        // ── the guest-visible pause: stop, the transaction, migrate, QEMU's
        //    set-up and capture; then the guest resumes ──
        TRY(sw.run());
        TRY(mon.migrate("fd:migrate"));
        fd_passed = false;
        resume_once_ram_streams(mon, writer, false, [&] { return mon.cont(); });
        return ok();
    };
    if (gated) {
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
    } else if (!overlap) {
        TRY(stop_first());
    } else {
        // Walk-overlap: `migrate` while the guest runs; `stop` lands in QEMU's
        // walk, so only what is left of it is inside the pause.
        TRY(relay->open_gate());
        StopBeforeActive order(mon);
        const auto migrate_sent = Clock::now();
        TRY(mon.migrate("fd:migrate"));
        fd_passed = false;
        auto stop_after = milliseconds(std::max<int64_t>(0, *walk_estimate * kWalkShareNum / kWalkShareDen - kWalkLeadMs));
        // VIRTSNAP_TEST_LATE_STOP=1: `stop` well after the walk, so that it
        // comes after QEMU's own stop (the test of the retry).
        if (env_is("VIRTSNAP_TEST_LATE_STOP", "1")) stop_after = milliseconds(*walk_estimate + 100);
        std::this_thread::sleep_until(migrate_sent + stop_after);
        // Whatever fails from here, QEMU's snapshot runs on: the stream is
        // dropped and it completes into nothing, rather than broken.
        auto drop_stream = [&] {
            relay->abandon();
            return qemu::wait_for_migration_end(mon, std::chrono::minutes(10));
        };
        // ── the guest-visible pause begins ──
        if (Status paused = sw.pause(); !paused) {
            (void)drop_stream();
            return fail(std::move(paused).error());
        }
        if (order.stop_came_first()) {
            if (Status switched = sw.switch_disks(); !switched) {
                (void)sw.resume();
                (void)drop_stream();
                return fail(std::move(switched).error());
            }
            resume_once_ram_streams(mon, writer, true, [&] { return sw.resume(); });
            walk_seen = order.ms_to_active(migrate_sent);
        } else {
            // QEMU stopped the guest first and captured it running: that
            // stream is not the disks' instant. The guest goes on, the relay
            // drops the stream, QEMU's snapshot completes into nothing, and
            // the memory is taken again stop-first.
            Status resumed = sw.resume();
            auto ended = drop_stream();
            if (!resumed) return fail(std::move(resumed).error());
            if (!ended || *ended != "completed")
                return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                            job + ": the dropped stream did not complete (" + ended.value_or("still running") + ")");
            auto dropped = mon.query_migrate();
            const int64_t walked = order.ms_to_active(migrate_sent).value_or(-1);
            VS_INFO("the stop came after QEMU's own capture (stop %lld ms after migrate, QEMU's walk and set-up over "
                    "after %lld ms): taking the memory again, stop first",
                    (long long)stop_after.count(), (long long)walked);
            if (walked >= 0) g_walks.record(*qemu_pid, walked);
            // The dropped stream's write protection split guest RAM's huge
            // pages; put them back first, or the walk and the write protection
            // inside the next pause take several times longer (40-55 ms at
            // 1 GiB against 4-7 ms).
            if (dropped && dropped->ram) (void)qemu::guest_ram::collapse(*qemu_pid, uint64_t(dropped->ram->total));
            (void)relay->finish(std::chrono::minutes(1));  // abandoned: it reports the drop
            relay.reset();
            TRY(start_stream());
            TRY(stop_first());
        }
    }
    VS_DEBUG("instant migration started (%s)", gated ? "gated" : overlap ? "walk-overlap" : "stop-first");

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
            if (auto walk = walk_seen ? walk_seen : last.setup_time_ms; !gated && qemu_pid && walk)
                g_walks.record(*qemu_pid, *walk);
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

InstantSwitch::InstantSwitch(Fn pause, Fn switch_disks, Fn resume)
    : pause_(std::move(pause)), switch_disks_(std::move(switch_disks)), resume_(std::move(resume)), outer_(t_switch) {
    t_switch = this;
}

InstantSwitch::~InstantSwitch() { t_switch = outer_; }

InstantSwitch *InstantSwitch::current() { return t_switch; }

Status InstantSwitch::switch_disks() {
    if (ran_) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "instant switch run twice");
    ran_ = true;
    return switch_disks_();
}

Status InstantSwitch::run() {
    if (ran_) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "instant switch run twice");
    TRY(pause_());
    return switch_disks();
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
