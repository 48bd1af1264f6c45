// qemumonitortest.cc - the QMP monitor against a mock QEMU on a real unix
// socket: every typed call, error replies, events interleaved with replies,
// EOF mid-command, timeouts, concurrent callers, fd passing, re-attach, and
// the calls gated on probed capabilities.

#include "qemu/capabilities.hh"
#include "qemu/monitor.hh"
#include "qemu/monitor_json.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"

#include <atomic>
#include <mutex>
#include <thread>

#include <unistd.h>

using namespace virtsnap;
using namespace virtsnap::qemu;
using virtsnap::test::MockQmpServer;
using virtsnap::test::Tap;

namespace {

std::string data_path(const std::string &name) { return test::source_dir() + "/qemumonitordata/" + name + ".qmp"; }

Monitor::Options fast_options() {
    Monitor::Options o;
    o.vm_name = "vm1";
    o.timeout = Millis(5000);
    o.greeting_timeout = Millis(5000);
    return o;
}

// Starts the mock with a conversation and connects a monitor to it.
struct Fixture {
    MockQmpServer server;
    std::unique_ptr<Monitor> mon;

    Fixture(Tap &tap, const std::string &script, Monitor::Options opts = fast_options()) {
        server.load_script(data_path(script));
        server.start();
        auto m = Monitor::connect(server.socket_path(), opts);
        tap.ok(m.has_value(), script + ": connect", m ? "" : m.error().message());
        if (m) mon = std::move(m).value();
    }
    // Closes the monitor and checks that the conversation went as scripted.
    void check(Tap &tap, const std::string &script) {
        mon.reset();
        auto problems = server.finish();
        std::string all;
        for (const auto &p : problems) all += p + "\n";
        tap.ok(problems.empty(), script + ": conversation as scripted", all);
    }
};

template <typename T>
bool ok_result(Tap &tap, const Result<T> &r, const std::string &name) {
    return tap.ok(r.has_value(), name, r ? "" : r.error().message());
}

void test_basic(Tap &tap) {
    Fixture f(tap, "basic");
    if (!f.mon) return;
    tap.eq(f.mon->greeting().major, 7, "basic: greeting version parsed");
    std::mutex mu;
    std::vector<std::string> events;
    f.mon->subscribe("", [&](const QmpEvent &e) {
        std::lock_guard lock(mu);
        events.push_back(e.name);
    });
    std::optional<ShutdownEvent> shutdown;
    f.mon->subscribe("SHUTDOWN", [&](const QmpEvent &e) {
        auto s = parse_shutdown_event(e);
        std::lock_guard lock(mu);
        if (s) shutdown = *s;
    });
    ok_result(tap, f.mon->stop(), "basic: stop");
    auto st = f.mon->query_status();
    if (ok_result(tap, st, "basic: query-status paused"))
        tap.ok(!st->running && st->status == "paused", "basic: paused state parsed");
    ok_result(tap, f.mon->cont(), "basic: cont");
    st = f.mon->query_status();
    if (ok_result(tap, st, "basic: query-status running"))
        tap.ok(st->running && st->status == "running", "basic: running state parsed");
    ok_result(tap, f.mon->system_reset(), "basic: system_reset");
    ok_result(tap, f.mon->system_powerdown(), "basic: system_powerdown");
    ok_result(tap, f.mon->quit(), "basic: quit");
    f.check(tap, "basic");
    std::lock_guard lock(mu);
    std::string joined;
    for (const auto &e : events) joined += (joined.empty() ? "" : ",") + e;
    tap.eq_text(joined, "STOP,RESUME,RESET,POWERDOWN,SHUTDOWN", "basic: events delivered in order");
    tap.ok(shutdown && shutdown->guest && shutdown->reason == "guest-shutdown", "basic: SHUTDOWN data parsed");
}

void test_block(Tap &tap) {
    Fixture f(tap, "block");
    if (!f.mon) return;
    auto blocks = f.mon->query_block();
    if (ok_result(tap, blocks, "block: query-block") && blocks->size() == 1) {
        const BlockInfo &b = (*blocks)[0];
        tap.ok(b.inserted && b.inserted->node_name == "libvirt-1-format" && b.inserted->drv == "qcow2" &&
                   b.qdev == "/machine/peripheral/virtio-disk0/virtio-backend",
               "block: query-block parsed");
    }
    auto nodes = f.mon->query_named_block_nodes();
    if (ok_result(tap, nodes, "block: query-named-block-nodes") && nodes->size() == 2) {
        const NamedBlockNode &n = (*nodes)[0];
        tap.ok(n.node_name == "libvirt-1-format" && n.virtual_size == 1073741824 && n.actual_size == 200704 &&
                   n.dirty_bitmaps.size() == 1 && n.dirty_bitmaps[0].name == "c1" &&
                   n.dirty_bitmaps[0].persistent && n.dirty_bitmaps[0].count == 131072,
               "block: named nodes with bitmaps parsed");
    }
    QDict file{{"driver", "file"},
               {"filename", "/var/lib/vm/overlay.qcow2"},
               {"node-name", "libvirt-2-storage"},
               {"auto-read-only", true},
               {"discard", "unmap"}};
    ok_result(tap, f.mon->blockdev_add(file), "block: blockdev-add file");
    {
        JobWatch watch(*f.mon, "create-libvirt-2-format");
        QDict opts{{"driver", "qcow2"},
                   {"file", "libvirt-2-storage"},
                   {"size", int64_t(1073741824)},
                   {"backing-file", "/var/lib/vm/base.qcow2"},
                   {"backing-fmt", "qcow2"}};
        ok_result(tap, f.mon->blockdev_create("create-libvirt-2-format", opts), "block: blockdev-create");
        ok_result(tap, f.mon->finish_job(watch, Millis(5000)), "block: create job concluded and dismissed");
        auto h = watch.history();
        tap.ok(h.size() >= 5 && h[0] == "created" && h[4] == "concluded", "block: job history from events");
    }
    QDict fmt{{"node-name", "libvirt-2-format"},
              {"read-only", false},
              {"driver", "qcow2"},
              {"file", "libvirt-2-storage"},
              {"backing", nullptr}};
    ok_result(tap, f.mon->blockdev_add(fmt), "block: blockdev-add qcow2");
    Transaction t;
    t.bitmap_add("libvirt-1-format", "s1", true)
        .bitmap_disable("libvirt-1-format", "c1")
        .blockdev_snapshot("libvirt-1-format", "libvirt-2-format");
    ok_result(tap, f.mon->transaction(t), "block: transaction");
    ok_result(tap, f.mon->block_dirty_bitmap_add("libvirt-2-format", "tmp", false, true, 131072), "block: bitmap add");
    ok_result(tap, f.mon->block_dirty_bitmap_merge("libvirt-2-format", "tmp", {"s1", "c1"}), "block: bitmap merge");
    ok_result(tap, f.mon->block_dirty_bitmap_enable("libvirt-2-format", "tmp"), "block: bitmap enable");
    ok_result(tap, f.mon->block_dirty_bitmap_disable("libvirt-2-format", "tmp"), "block: bitmap disable");
    ok_result(tap, f.mon->block_dirty_bitmap_clear("libvirt-2-format", "tmp"), "block: bitmap clear");
    ok_result(tap, f.mon->block_dirty_bitmap_remove("libvirt-2-format", "tmp"), "block: bitmap remove");
    auto del = f.mon->blockdev_del("libvirt-3-format");
    tap.ok(!del && del.error().code == VIR_ERR_INTERNAL_ERROR && del.error().domain == VIR_FROM_QEMU,
           "block: blockdev-del error code");
    if (!del)
        tap.eq_text(del.error().message(),
                    "internal error: unable to execute QEMU command 'blockdev-del': "
                    "Failed to find node with node-name='libvirt-3-format'",
                    "block: blockdev-del error text as libvirt");
    f.check(tap, "block");
}

void test_jobs(Tap &tap) {
    Fixture f(tap, "jobs");
    if (!f.mon) return;
    std::mutex mu;
    std::vector<BlockJobEvent> block_events;
    f.mon->subscribe("", [&](const QmpEvent &e) {
        if (e.name.rfind("BLOCK_JOB_", 0) != 0 || e.name == "BLOCK_JOB_PENDING") return;
        auto b = parse_block_job_event(e);
        std::lock_guard lock(mu);
        if (b) block_events.push_back(*b);
    });
    {
        JobWatch watch(*f.mon, "commit-vda");
        BlockCommitArgs c;
        c.job_id = "commit-vda";
        c.device = "libvirt-3-format";
        c.top_node = "libvirt-2-format";
        c.base_node = "libvirt-1-format";
        c.backing_file = "base.qcow2";
        c.auto_finalize = false;
        c.auto_dismiss = false;
        ok_result(tap, f.mon->block_commit(c), "jobs: block-commit");
        auto st = watch.wait_for({"pending"}, Millis(5000));
        tap.ok(st && *st == "pending", "jobs: commit reached pending", st ? "" : st.error().message());
        ok_result(tap, f.mon->job_finalize("commit-vda"), "jobs: job-finalize");
        ok_result(tap, f.mon->finish_job(watch, Millis(5000)), "jobs: commit finished");
    }
    BlockStreamArgs s;
    s.job_id = "stream-vda";
    s.device = "libvirt-3-format";
    s.base_node = "libvirt-1-format";
    s.speed = 1048576;
    s.auto_dismiss = true;
    ok_result(tap, f.mon->block_stream(s), "jobs: block-stream");
    ok_result(tap, f.mon->job_cancel("stream-vda"), "jobs: job-cancel");
    BlockdevMirrorArgs m;
    m.job_id = "copy-vda";
    m.device = "libvirt-3-format";
    m.target = "libvirt-9-format";
    m.sync = "top";
    m.granularity = 65536;
    m.buf_size = 1048576;
    m.copy_mode = "write-blocking";
    ok_result(tap, f.mon->blockdev_mirror(m), "jobs: blockdev-mirror");
    ok_result(tap, f.mon->job_complete("copy-vda"), "jobs: job-complete");
    auto jobs = f.mon->query_jobs();
    if (ok_result(tap, jobs, "jobs: query-jobs") && jobs->size() == 1)
        tap.ok((*jobs)[0].type == "mirror" && (*jobs)[0].error == "No space left on device" &&
                   (*jobs)[0].current_progress == 10 && (*jobs)[0].total_progress == 20,
               "jobs: query-jobs parsed with error");
    f.check(tap, "jobs");
    std::lock_guard lock(mu);
    tap.ok(block_events.size() == 2 && block_events[0].type == "commit" && block_events[0].len == 1048576 &&
               block_events[1].device == "copy-vda",
           "jobs: BLOCK_JOB_COMPLETED/READY parsed", std::to_string(block_events.size()));
}

void test_migration(Tap &tap) {
    Fixture f(tap, "migration");
    if (!f.mon) return;
    std::mutex mu;
    std::vector<std::string> statuses;
    f.mon->subscribe("MIGRATION", [&](const QmpEvent &e) {
        auto m = parse_migration_event(e);
        std::lock_guard lock(mu);
        if (m) statuses.push_back(m->status);
    });
    auto caps = f.mon->query_migrate_capabilities();
    if (ok_result(tap, caps, "migration: query-migrate-capabilities"))
        tap.ok(caps->size() == 3 && (*caps)[1].capability == "background-snapshot" && !(*caps)[1].state,
               "migration: capabilities parsed");
    ok_result(tap, f.mon->migrate_set_capabilities({{"background-snapshot", true}, {"xbzrle", false}}),
              "migration: migrate-set-capabilities");
    ok_result(tap,
              f.mon->migrate_set_parameters(
                  QDict{{"max-bandwidth", int64_t(9223372036853727232LL)}, {"multifd-channels", 4}}),
              "migration: migrate-set-parameters");
    auto params = f.mon->query_migrate_parameters();
    if (ok_result(tap, params, "migration: query-migrate-parameters"))
        tap.ok(params->max_bandwidth == 9223372036853727232LL && params->downtime_limit == 300 &&
                   params->multifd_channels == 4,
               "migration: parameters parsed");
    auto bad_params = f.mon->query_migrate_parameters();
    tap.ok(!bad_params && bad_params.error().detail ==
                              "unexpected type returned by QEMU command 'query-migrate-parameters'",
           "migration: parameters of the wrong type", bad_params ? "" : bad_params.error().detail);
    auto info = f.mon->query_migrate();
    if (ok_result(tap, info, "migration: query-migrate before"))
        tap.ok(info->status == "none" && !info->ram, "migration: empty query-migrate is 'none'");
    ok_result(tap, f.mon->migrate("exec:cat > /var/lib/vm/mem.save"), "migration: migrate exec:");
    info = f.mon->query_migrate();
    if (ok_result(tap, info, "migration: query-migrate active"))
        tap.ok(info->status == "active" && info->ram && info->ram->transferred == 182523648 &&
                   info->ram->remaining == 900000000 && info->ram->total == 1082523648 && info->setup_time == 2 &&
                   info->total_time == 1500 && info->expected_downtime == 300,
               "migration: progress parsed");
    ok_result(tap, f.mon->migrate_cancel(), "migration: migrate_cancel");
    info = f.mon->query_migrate();
    if (ok_result(tap, info, "migration: query-migrate failed"))
        tap.ok(info->status == "failed" && info->error_desc == "Unable to write to command: Broken pipe",
               "migration: error-desc parsed");

    int p[2];
    if (!tap.ok(::pipe(p) == 0, "migration: pipe")) return;
    UniqueFd rd(p[0]), wr(p[1]);
    ok_result(tap, f.mon->migrate_to_fd(wr.get()), "migration: migrate to fd");
    info = f.mon->query_migrate();
    if (ok_result(tap, info, "migration: query-migrate completed"))
        tap.ok(info->status == "completed" && info->downtime == 12, "migration: downtime parsed");
    auto second = f.mon->migrate_to_fd(wr.get());
    tap.ok(!second && second.error().detail ==
                          "unable to execute QEMU command 'migrate': There's a migration process in progress",
           "migration: failed migrate keeps its error (fd closed after)");
    auto inc = f.mon->migrate_incoming("defer");
    tap.ok(!inc, "migration: migrate-incoming error reported");
    f.check(tap, "migration");

    // The mock got a real descriptor: writing into it comes out of our pipe.
    auto fds = f.server.take_received_fds();
    if (tap.eq(fds.size(), size_t(2), "migration: two descriptors passed with getfd")) {
        wr.reset();
        bool wrote = ::write(fds[0].get(), "ram", 3) == 3;
        fds.clear();
        char buf[8] = {};
        ssize_t n = ::read(rd.get(), buf, sizeof(buf));
        tap.ok(wrote && n == 3 && std::string(buf, 3) == "ram", "migration: passed fd is the pipe's write end");
    }
    std::lock_guard lock(mu);
    tap.ok(statuses.size() == 3 && statuses[0] == "setup" && statuses[2] == "cancelling",
           "migration: MIGRATION events in order");
}

void test_snapshot(Tap &tap) {
    Fixture f(tap, "snapshot");
    if (!f.mon) return;
    SnapshotJobArgs save{"snapsave0", "s1", "libvirt-1-format", {"libvirt-1-format"}};
    {
        JobWatch watch(*f.mon, save.job_id);
        ok_result(tap, f.mon->snapshot_save(save), "snapshot: snapshot-save");
        ok_result(tap, f.mon->finish_job(watch, Millis(5000)), "snapshot: save job finished");
    }
    SnapshotJobArgs load{"snapload0", "nope", "libvirt-1-format", {"libvirt-1-format"}};
    {
        JobWatch watch(*f.mon, load.job_id);
        ok_result(tap, f.mon->snapshot_load(load), "snapshot: snapshot-load");
        auto r = f.mon->finish_job(watch, Millis(5000));
        tap.ok(!r && r.error().code == VIR_ERR_OPERATION_FAILED &&
                   r.error().detail == "job 'snapload0' failed: Snapshot 'nope' does not exist in one or more devices",
               "snapshot: failed job reports QEMU's error", r ? "" : r.error().message());
    }
    SnapshotJobArgs del{"snapdel0", "s1", "", {"libvirt-1-format"}};
    {
        JobWatch watch(*f.mon, del.job_id);
        ok_result(tap, f.mon->snapshot_delete(del), "snapshot: snapshot-delete");
        auto r = watch.wait_for({"concluded"}, Millis(200));
        tap.ok(!r && r.error().code == VIR_ERR_OPERATION_TIMEOUT, "snapshot: waiting for a silent job times out");
    }
    f.check(tap, "snapshot");
}

void test_nbd(Tap &tap) {
    Fixture f(tap, "nbd");
    if (!f.mon) return;
    NbdServerAddress addr;
    addr.path = "/run/vm/nbd.sock";
    ok_result(tap, f.mon->nbd_server_start(addr), "nbd: nbd-server-start");
    ok_result(tap, f.mon->nbd_server_add("libvirt-1-format", "vda", false, "backup-vda"), "nbd: nbd-server-add");
    ok_result(tap, f.mon->nbd_server_remove("vda"), "nbd: nbd-server-remove");
    ok_result(tap, f.mon->nbd_server_stop(), "nbd: nbd-server-stop");
    int p[2];
    if (!tap.ok(::pipe(p) == 0, "nbd: pipe")) return;
    UniqueFd rd(p[0]), wr(p[1]);
    auto added = f.mon->add_fd(rd.get(), 3, "vda-image");
    if (ok_result(tap, added, "nbd: add-fd"))
        tap.ok(added->fdset_id == 3 && added->fd == 27, "nbd: add-fd reply parsed");
    ok_result(tap, f.mon->remove_fd(3, 27), "nbd: remove-fd");
    f.check(tap, "nbd");
    tap.eq(f.server.take_received_fds().size(), size_t(1), "nbd: add-fd passed a descriptor");
}

void test_caps(Tap &tap) {
    Fixture f(tap, "caps");
    if (!f.mon) return;
    tap.ok(f.mon->require_command("anything").has_value(), "caps: nothing is gated before caps are known");
    auto caps = std::make_shared<QemuCaps>();
    caps->binary = "/usr/bin/qemu-system-x86_64";
    caps->commands = {"query-status", "block-export-add", "block-export-del", "migrate-set-capabilities"};
    caps->migration_capabilities = {"events", "background-snapshot"};
    f.mon->set_caps(caps);
    tap.ok(f.mon->caps() == caps, "caps: kept by the monitor");

    SnapshotJobArgs save{"snapsave0", "s1", "libvirt-1-format", {"libvirt-1-format"}};
    auto r = f.mon->snapshot_save(save);
    tap.ok(!r && r.error().code == VIR_ERR_OPERATION_UNSUPPORTED &&
               r.error().detail == "QEMU binary '/usr/bin/qemu-system-x86_64' does not support the 'snapshot-save' command",
           "caps: snapshot-save refused without sending it", r ? "" : r.error().message());
    tap.ok(!f.mon->snapshot_load(save) && !f.mon->snapshot_delete(save), "caps: snapshot-load/delete refused too");
    QDict reopen{{"driver", "qcow2"},
                 {"node-name", "libvirt-1-format"},
                 {"file", "libvirt-1-storage"},
                 {"read-only", false},
                 {"backing", nullptr}};
    auto ro = f.mon->blockdev_reopen({reopen});
    tap.ok(!ro && ro.error().code == VIR_ERR_OPERATION_UNSUPPORTED, "caps: blockdev-reopen refused");
    auto mc = f.mon->migrate_set_capabilities({{"background-snapshot", true}, {"mapped-ram", true}});
    tap.ok(!mc && mc.error().code == VIR_ERR_OPERATION_UNSUPPORTED &&
               mc.error().detail == "QEMU does not support migration capability 'mapped-ram'",
           "caps: unknown migration capability refused", mc ? "" : mc.error().message());
    ok_result(tap, f.mon->migrate_set_capabilities({{"background-snapshot", true}}),
              "caps: known migration capability sent");
    ok_result(tap, f.mon->nbd_server_add("libvirt-1-format", "vda", false, "backup-vda"),
              "caps: export through block-export-add");
    auto rw = f.mon->nbd_server_add("libvirt-2-format", "vdb", true);
    tap.ok(!rw && rw.error().detail == "unable to execute QEMU command 'block-export-add': Block node is read-only",
           "caps: block-export-add error reported as QEMU's", rw ? "" : rw.error().detail);
    ok_result(tap, f.mon->nbd_server_remove("vda"), "caps: export removed through block-export-del");

    auto more = std::make_shared<QemuCaps>(*caps);
    more->commands.insert({"blockdev-reopen", "snapshot-save"});
    f.mon->set_caps(more);
    ok_result(tap, f.mon->blockdev_reopen({reopen}), "caps: blockdev-reopen sent once the schema has it");
    auto sv = f.mon->snapshot_save(save);
    tap.ok(!sv && sv.error().code == VIR_ERR_INTERNAL_ERROR, "caps: snapshot-save sent once the schema has it");
    f.check(tap, "caps");
}

void test_introspection(Tap &tap) {
    Fixture f(tap, "introspection");
    if (!f.mon) return;
    auto cmds = f.mon->query_commands();
    if (ok_result(tap, cmds, "introspection: query-commands"))
        tap.ok(cmds->size() == 3 && (*cmds)[1] == "snapshot-save", "introspection: commands parsed");
    auto schema = f.mon->query_qmp_schema();
    if (ok_result(tap, schema, "introspection: query-qmp-schema")) {
        auto names = qmpjson::parse_schema_names(*schema, "command");
        auto events = qmpjson::parse_schema_names(*schema, "event");
        tap.ok(names && names->size() == 1 && (*names)[0] == "query-status" && events && events->size() == 1,
               "introspection: schema names by meta-type");
    }
    auto machines = f.mon->query_machines();
    if (ok_result(tap, machines, "introspection: query-machines"))
        tap.ok(machines->size() == 2 && (*machines)[0].is_default && (*machines)[0].alias == "pc" &&
                   (*machines)[1].cpu_max == 288,
               "introspection: machines parsed");
    auto kvm = f.mon->query_kvm();
    if (ok_result(tap, kvm, "introspection: query-kvm")) tap.ok(!kvm->enabled && kvm->present, "introspection: kvm");
    f.check(tap, "introspection");
}

void test_errors(Tap &tap) {
    Fixture f(tap, "error");
    if (!f.mon) return;
    auto r = f.mon->cont();
    tap.ok(!r && r.error().code == VIR_ERR_INTERNAL_ERROR, "error: cont fails with INTERNAL_ERROR");
    if (!r)
        tap.eq_text(r.error().message(),
                    "internal error: unable to execute QEMU command 'cont': Resetting the Virtual Machine is required",
                    "error: message as libvirt words it");
    auto s = f.mon->query_status();
    tap.ok(!s && s.error().detail == "unable to execute QEMU command 'query-status': unknown QEMU command error",
           "error: error without desc", s ? "" : s.error().detail);
    s = f.mon->query_status();
    tap.ok(!s && s.error().detail == "unexpected type returned by QEMU command 'query-status'",
           "error: wrong reply type", s ? "" : s.error().detail);
    f.check(tap, "error");
}

void test_events(Tap &tap) {
    Fixture f(tap, "events");
    if (!f.mon) return;
    std::mutex mu;
    std::vector<std::string> order;
    std::vector<DeviceDeletedEvent> deleted;
    std::vector<BlockJobEvent> jobs;
    auto all = f.mon->subscribe("", [&](const QmpEvent &e) {
        std::lock_guard lock(mu);
        order.push_back(e.name + "@" + std::to_string(e.microseconds));
    });
    f.mon->subscribe("DEVICE_DELETED", [&](const QmpEvent &e) {
        auto d = parse_device_deleted_event(e);
        std::lock_guard lock(mu);
        if (d) deleted.push_back(*d);
    });
    f.mon->subscribe("BLOCK_JOB_ERROR", [&](const QmpEvent &e) {
        auto b = parse_block_job_event(e);
        std::lock_guard lock(mu);
        if (b) jobs.push_back(*b);
    });
    auto bad = parse_block_job_event(QmpEvent{"BLOCK_JOB_ERROR", QValue(QDict{{"type", "mirror"}}), 0, 0});
    tap.ok(!bad, "events: malformed event data is an error");
    auto st = f.mon->query_status();
    ok_result(tap, st, "events: reply between events");
    {
        std::lock_guard lock(mu);
        // Events before the reply are dispatched before the caller wakes up.
        tap.ok(order.size() >= 2 && order[0] == "DEVICE_DELETED@1" && order[1] == "DEVICE_DELETED@2",
               "events: earlier events delivered before the reply returns");
    }
    // The two events after the first reply may still be on their way: the
    // monitor only orders events before the reply that follows them.
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard lock(mu);
            if (order.size() >= 4) break;
        }
        std::this_thread::sleep_for(Millis(10));
    }
    f.mon->unsubscribe(all);
    st = f.mon->query_status();
    if (ok_result(tap, st, "events: second reply")) tap.eq_text(st->status, "postmigrate", "events: postmigrate");
    f.check(tap, "events");
    std::lock_guard lock(mu);
    tap.ok(order.size() == 4 && order[2] == "BLOCK_JOB_ERROR@3" && order[3] == "BLOCK_JOB_COMPLETED@4",
           "events: unsubscribed handler no longer called", std::to_string(order.size()));
    tap.ok(deleted.size() == 2 && !deleted[0].device && deleted[1].device == "vdb", "events: DEVICE_DELETED parsed");
    tap.ok(jobs.size() == 1 && jobs[0].action == "report" && jobs[0].device == "copy-vda",
           "events: BLOCK_JOB_ERROR parsed");
}

void test_eof(Tap &tap) {
    Fixture f(tap, "eof");
    if (!f.mon) return;
    std::mutex mu;
    std::vector<std::string> eofs;
    f.mon->set_eof_handler([&](const Error &e) {
        std::lock_guard lock(mu);
        eofs.push_back(e.message());
    });
    ok_result(tap, f.mon->query_status(), "eof: command before EOF");
    auto r = f.mon->stop();
    tap.ok(!r && r.error().code == VIR_ERR_INTERNAL_ERROR, "eof: pending command fails");
    if (!r)
        tap.eq_text(r.error().message(), "internal error: End of file from qemu monitor (vm='vm1')",
                    "eof: libvirt's EOF message");
    tap.ok(f.mon->closed(), "eof: monitor reports closed");
    auto later = f.mon->query_status();
    tap.ok(!later && later.error().detail == "End of file from qemu monitor (vm='vm1')", "eof: later calls fail too");
    // The handler runs on the monitor thread right after waking the callers.
    for (int i = 0; i < 200; ++i) {
        {
            std::lock_guard lock(mu);
            if (!eofs.empty()) break;
        }
        std::this_thread::sleep_for(Millis(10));
    }
    {
        std::lock_guard lock(mu);
        tap.eq(eofs.size(), size_t(1), "eof: EOF handler fired once");
    }
    f.check(tap, "eof");
}

void test_timeout(Tap &tap) {
    Fixture f(tap, "timeout");
    if (!f.mon) return;
    auto start = std::chrono::steady_clock::now();
    auto r = f.mon->execute("query-migrate", {}, Millis(200));
    auto took = std::chrono::steady_clock::now() - start;
    tap.ok(!r && r.error().code == VIR_ERR_OPERATION_TIMEOUT, "timeout: OPERATION_TIMEOUT",
           r ? "" : r.error().message());
    tap.ok(took >= Millis(190) && took < Millis(3000), "timeout: honoured");
    ok_result(tap, f.mon->query_status(), "timeout: monitor still usable");
    f.check(tap, "timeout");
}

void test_reattach(Tap &tap) {
    MockQmpServer server;
    server.load_script(data_path("reattach"));
    server.start();
    {
        auto m = Monitor::connect(server.socket_path(), fast_options());
        if (!ok_result(tap, m, "reattach: first connection")) return;
        tap.eq((*m)->greeting().major, 10, "reattach: QEMU 10 greeting");
        ok_result(tap, (*m)->query_status(), "reattach: first query-status");
    }
    auto m = Monitor::connect(server.socket_path(), fast_options());
    if (ok_result(tap, m, "reattach: second connection")) {
        auto st = (*m)->query_status();
        tap.ok(st && st->status == "paused", "reattach: second query-status");
    }
    if (m) m->reset();
    auto problems = server.finish();
    tap.ok(problems.empty(), "reattach: conversation as scripted", problems.empty() ? "" : problems[0]);
    tap.eq(server.connections(), 2, "reattach: two connections");
}

void test_concurrency(Tap &tap) {
    MockQmpServer server;
    server.set_handler([](const QValue &cmd, std::vector<UniqueFd> &) -> std::vector<std::string> {
        const QValue *args = cmd.get("arguments");
        std::string event = R"({"event": "X-TICK", "timestamp": {"seconds": 1, "microseconds": 0}})";
        return {event, R"({"return": )" + qvalue_to_json(args ? *args : QValue(QDict{})) + "}"};
    });
    server.start();
    auto m = Monitor::connect(server.socket_path(), fast_options());
    if (!ok_result(tap, m, "concurrency: connect")) return;
    Monitor &mon = **m;
    std::atomic<int> ticks{0};
    mon.subscribe("X-TICK", [&](const QmpEvent &) { ++ticks; });
    constexpr int kThreads = 8, kCalls = 25;
    std::atomic<int> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kCalls; ++i) {
                int64_t n = t * 1000 + i;
                auto r = mon.execute("x-echo", QDict{{"n", n}});
                if (r && r->get("n") && r->get("n")->integer() == n) ++good;
                else ++bad;
            }
        });
    for (auto &th : threads) th.join();
    tap.eq(good.load(), kThreads * kCalls, "concurrency: every caller got its own reply");
    tap.eq(bad.load(), 0, "concurrency: no mismatched replies");
    if (m) m->reset();
    tap.eq(ticks.load(), kThreads * kCalls, "concurrency: every event delivered");
    tap.ok(server.finish().empty(), "concurrency: mock saw no problems");
}

void test_external_context(Tap &tap) {
    // The daemon may drive the monitor from its own main loop.
    GMainContext *ctx = g_main_context_new();
    GMainLoop *loop = g_main_loop_new(ctx, FALSE);
    std::thread loop_thread([&] {
        g_main_context_push_thread_default(ctx);
        g_main_loop_run(loop);
        g_main_context_pop_thread_default(ctx);
    });
    {
        auto opts = fast_options();
        opts.context = ctx;
        Fixture f(tap, "timeout", opts);
        if (f.mon) {
            auto r = f.mon->execute("query-migrate", {}, Millis(100));
            tap.ok(!r, "external context: timeout");
            ok_result(tap, f.mon->query_status(), "external context: reply");
            f.check(tap, "timeout (external context)");
        }
    }
    g_main_loop_quit(loop);
    loop_thread.join();
    g_main_loop_unref(loop);
    g_main_context_unref(ctx);
}

void test_mismatch_detected(Tap &tap) {
    // The mock itself must catch a wrong command and say where.
    Fixture f(tap, "error");
    if (!f.mon) return;
    auto r = f.mon->stop();
    tap.ok(!r, "mismatch: wrong command gets an error reply");
    f.mon.reset();
    auto problems = f.server.finish();
    tap.ok(problems.size() == 2 && problems[0].find("error.qmp:2: expected") == 0,
           "mismatch: reported with file:line", problems.empty() ? "" : problems[0]);
}

void test_connect_failures(Tap &tap) {
    auto m = Monitor::connect(test::temp_dir("nomon") + "/missing.sock", fast_options());
    tap.ok(!m && m.error().code == VIR_ERR_SYSTEM_ERROR, "connect: missing socket is a system error");

    MockQmpServer silent(MockQmpServer::Options{false, false});
    silent.set_handler([](const QValue &, std::vector<UniqueFd> &) { return std::vector<std::string>{}; });
    silent.start();
    auto opts = fast_options();
    opts.greeting_timeout = Millis(200);
    m = Monitor::connect(silent.socket_path(), opts);
    tap.ok(!m && m.error().code == VIR_ERR_OPERATION_TIMEOUT, "connect: no greeting times out");
    silent.finish();
}

void test_json_edges(Tap &tap) {
    auto msg = qmpjson::parse_message(R"({"return": {}, "id": "virtsnap-1"})");
    tap.ok(msg && msg->kind == qmpjson::Message::Kind::Reply && msg->id == "virtsnap-1", "json: reply with id");
    tap.ok(!qmpjson::parse_message("[1,2]"), "json: non-object rejected");
    tap.ok(!qmpjson::parse_message(std::string(10000, '[')), "json: deep nesting rejected");
    tap.ok(!qmpjson::parse_message(R"({"foo": 1})"), "json: unknown message rejected");
    tap.eq_text(qmpjson::build_command("x", QDict{{"a", 1}}, "id-1"), R"({"execute":"x","arguments":{"a":1},"id":"id-1"})",
                "json: command layout");
    tap.eq_text(qmpjson::build_command("cont", {}, ""), R"({"execute":"cont"})", "json: no arguments member");
    std::string bad_utf8 = "a\xff";
    tap.ok(!qvalue_to_json(QValue(bad_utf8)).empty(), "json: invalid UTF-8 does not throw");
}

}  // namespace

int main() {
    Tap tap;
    test_basic(tap);
    test_block(tap);
    test_jobs(tap);
    test_migration(tap);
    test_snapshot(tap);
    test_nbd(tap);
    test_caps(tap);
    test_introspection(tap);
    test_errors(tap);
    test_events(tap);
    test_eof(tap);
    test_timeout(tap);
    test_reattach(tap);
    test_concurrency(tap);
    test_external_context(tap);
    test_mismatch_detected(tap);
    test_connect_failures(tap);
    test_json_edges(tap);
    return tap.finish();
}
