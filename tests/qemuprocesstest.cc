// qemuprocesstest - the QEMU process lifecycle.
//
//   qemuprocesstest --unit         runtime status file: format -> parse -> format,
//                                  golden output, state/reason names, bad input
//   qemuprocesstest --integration  real QEMU (TCG) with the test guest: start,
//                                  pause/resume, agent freeze/thaw, re-attach after
//                                  dropping the object, ACPI shutdown, destroy,
//                                  kill -9 of QEMU, re-attach to a dead QEMU,
//                                  paused start, a start that fails, destroy of
//                                  a QEMU that ignores SIGTERM (SIGKILL after
//                                  the grace period), crash of a re-attached
//                                  QEMU that is not our child, an overlay whose
//                                  XML leaves its backing chain implicit (and
//                                  one whose base is missing)
#include "conf/state_layout.hh"
#include "qemu/capabilities.hh"
#include "qemu/domain_process.hh"
#include "qemu/domain_status.hh"
#include "qemu/host_probe.hh"
#include "qemu/process_paths.hh"
#include "tap.hh"
#include "util/file.hh"
#include "util/log.hh"
#include "util/process.hh"

#include "qemu/agent.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include <cerrno>
#include <cstdio>

#include <sys/wait.h>
#include <unistd.h>

using namespace virtsnap;
using namespace virtsnap::qemu;
using virtsnap::test::Tap;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// ---------------------------------------------------------------------------
// unit: the status file

const char *kUnitDomain = R"(<domain type='qemu' id='3'>
  <name>vsstatus</name>
  <uuid>5b7f4a7e-2f57-4c55-9a55-2d1a3b9e0c11</uuid>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/images/top.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/images/base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
)";

DomainStatus sample_status() {
    DomainStatus st;
    st.state = VIR_DOMAIN_PAUSED;
    st.reason = VIR_DOMAIN_PAUSED_FROM_SNAPSHOT;
    st.pid = 4242;
    st.start_time = 987654321;
    st.no_shutdown = true;
    st.monitor_path = "/root/run/qemu/vsstatus.monitor";
    st.agent_path = "/root/run/qemu/vsstatus.agent";
    st.log_path = "/root/log/qemu/vsstatus.log";
    st.memory_paths = {"/dev/hugepages/libvirt/qemu-embed-0123abcd/3-vsstatus"};
    st.next_node_index = 5;
    st.disks.push_back({"vda", {{4, "libvirt-4-storage", "libvirt-4-format"}, {1, "libvirt-1-storage", "libvirt-1-format"}}});
    st.disks.push_back({"hdc", {}});
    st.job = StatusJob{"snapshot-create", "transaction", "j-17", 0x10};
    auto def = conf::DomainDef::parse_string(kUnitDomain, conf::kDomainParseStatus);
    if (def) st.def = std::shared_ptr<const conf::DomainDef>(std::move(*def));
    return st;
}

void unit_tests(Tap &tap) {
    DomainStatus st = sample_status();
    tap.ok(st.def != nullptr, "sample live definition parses");
    std::string text = st.format();
    tap.eq_file(text, test::source_dir() + "/qemuprocessdata/status-full.xml", "status XML matches the golden file");

    auto parsed = DomainStatus::parse(text);
    if (!tap.ok(parsed.has_value(), "status XML parses", parsed ? "" : parsed.error().message())) return;
    tap.eq(parsed->state, int(VIR_DOMAIN_PAUSED), "state survives the round trip");
    tap.eq(parsed->reason, int(VIR_DOMAIN_PAUSED_FROM_SNAPSHOT), "reason survives the round trip");
    tap.eq(int(parsed->pid), 4242, "pid survives the round trip");
    tap.eq(parsed->start_time, 987654321ULL, "start time survives the round trip");
    tap.eq(parsed->monitor_path, st.monitor_path, "monitor path survives the round trip");
    tap.eq(parsed->agent_path, st.agent_path, "agent path survives the round trip");
    tap.eq(parsed->next_node_index, 5u, "next node index survives the round trip");
    tap.ok(parsed->memory_paths == st.memory_paths, "memory backend directories survive the round trip");
    tap.ok(parsed->disks == st.disks, "node names per disk layer survive the round trip");
    tap.ok(parsed->job && *parsed->job == *st.job, "running job survives the round trip");
    const DiskNodeNames *vda = parsed->disk("vda");
    tap.ok(vda && vda->top_node() == "libvirt-4-format", "top node of vda is the top layer's format node");
    tap.eq_text(parsed->format(), text, "format(parse(format(s))) == format(s)");

    // Minimal status: no agent, no job, no disks; running/booted.
    DomainStatus small;
    small.state = VIR_DOMAIN_RUNNING;
    small.reason = VIR_DOMAIN_RUNNING_BOOTED;
    small.pid = 77;
    small.no_shutdown = false;
    small.monitor_path = "/run/m";
    small.def = st.def;
    auto small2 = DomainStatus::parse(small.format());
    tap.ok(small2 && !small2->job && small2->agent_path.empty() && !small2->no_shutdown && small2->memory_paths.empty() &&
               small2->reason == VIR_DOMAIN_RUNNING_BOOTED,
           "minimal status round trip");

    // Saved atomically and loaded back.
    std::string dir = test::temp_dir("qemuprocesstest-unit");
    std::string path = dir + "/vsstatus.xml";
    tap.ok(st.save(path).has_value(), "status saves");
    auto loaded = DomainStatus::load(path);
    tap.ok(loaded && loaded->format() == text, "saved status loads unchanged");
    tap.ok(!file::exists(path + ".new"), "no temporary file is left behind");

    // Names as libvirt spells them.
    tap.eq(std::string(domain_state_name(VIR_DOMAIN_SHUTOFF)), std::string("shutoff"), "state name shutoff");
    tap.eq(std::string(domain_reason_name(VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_FROM_SNAPSHOT)),
           std::string("from snapshot"), "running reason 'from snapshot'");
    tap.eq(std::string(domain_reason_name(VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_STARTING_UP)),
           std::string("starting up"), "paused reason 'starting up'");
    tap.eq(std::string(domain_reason_name(VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_DAEMON)), std::string("daemon"),
           "shutoff reason 'daemon'");
    tap.ok(domain_reason_from_name(VIR_DOMAIN_SHUTOFF, "crashed") == VIR_DOMAIN_SHUTOFF_CRASHED,
           "shutoff reason parses");

    // Bad documents.
    auto wrong_root = DomainStatus::parse("<domain/>");
    tap.ok(!wrong_root && wrong_root.error().code == VIR_ERR_XML_ERROR, "wrong root element is an XML error");
    std::string no_pid = text;
    no_pid.replace(no_pid.find(" pid='4242'"), 11, "");
    auto r1 = DomainStatus::parse(no_pid);
    tap.ok(!r1 && r1.error().detail.find("pid") != std::string::npos, "missing pid is rejected",
           r1 ? "" : r1.error().message());
    std::string bad_state = text;
    bad_state.replace(bad_state.find("state='paused'"), 14, "state='sleepy'");
    auto r2 = DomainStatus::parse(bad_state);
    tap.ok(!r2 && r2.error().detail == "invalid domain state 'sleepy'", "unknown state is rejected",
           r2 ? "" : r2.error().detail);
    std::string no_domain = text.substr(0, text.find("  <domain ")) + "</domstatus>\n";
    auto r3 = DomainStatus::parse(no_domain);
    tap.ok(!r3, "status without <domain> is rejected");
}

// ---------------------------------------------------------------------------
// integration

// Collects the notifications a DomainProcess sends.
class Events {
public:
    DomainProcess::EventHandler handler() {
        return [this](DomainProcess &, const DomainEvent &e) {
            std::lock_guard lk(mu_);
            events_.push_back(e);
            cv_.notify_all();
        };
    }
    // Waits for a lifecycle event (event, detail) not consumed yet.
    std::optional<DomainEvent> wait(int event, int detail, milliseconds timeout = seconds(30)) {
        std::unique_lock lk(mu_);
        std::optional<DomainEvent> found;
        cv_.wait_for(lk, timeout, [&] {
            for (size_t i = 0; i < events_.size(); ++i) {
                const DomainEvent &e = events_[i];
                if (e.type == DomainEvent::Type::Lifecycle && e.event == event && e.detail == detail) {
                    found = e;
                    events_.erase(events_.begin() + long(i));
                    return true;
                }
            }
            return false;
        });
        return found;
    }
    std::vector<DomainEvent> take() {
        std::lock_guard lk(mu_);
        return std::exchange(events_, {});
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<DomainEvent> events_;
};

bool wait_until(const std::function<bool()> &pred, milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(milliseconds(50));
    }
    return pred();
}

size_t count_heartbeats(const std::string &serial) {
    auto text = file::read(serial, 64 * 1024 * 1024);
    if (!text) return 0;
    size_t n = 0, pos = 0;
    while ((pos = text->find("VSHB ", pos)) != std::string::npos) ++n, ++pos;
    return n;
}

bool serial_has(const std::string &serial, const std::string &what) {
    auto text = file::read(serial, 64 * 1024 * 1024);
    return text && text->find(what) != std::string::npos;
}

struct Env {
    std::string tmp, cache, serial, top, base, data;
    std::unique_ptr<StateLayout> layout;
    ProcessPaths paths;
};

std::string domain_xml(const Env &env, const std::string &name, const std::string &extra_cmdline = "") {
    return "<domain type='qemu'>\n"
           "  <name>" + name + "</name>\n"
           "  <uuid>6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f</uuid>\n"
           "  <memory unit='KiB'>262144</memory>\n"
           "  <currentMemory unit='KiB'>262144</currentMemory>\n"
           "  <vcpu placement='static'>1</vcpu>\n"
           "  <os>\n"
           "    <type arch='x86_64' machine='pc'>hvm</type>\n"
           "    <kernel>" + env.cache + "/vmlinuz</kernel>\n"
           "    <initrd>" + env.cache + "/initramfs.img</initrd>\n"
           "    <cmdline>console=ttyS0 quiet vs.heartbeat=50 vs.agent=1 vs.mount=/dev/vdb:/mnt/data" +
           extra_cmdline + "</cmdline>\n"
           "  </os>\n"
           "  <features>\n    <acpi/>\n  </features>\n"
           "  <on_poweroff>destroy</on_poweroff>\n"
           "  <on_reboot>restart</on_reboot>\n"
           "  <on_crash>destroy</on_crash>\n"
           "  <devices>\n"
           "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
           "    <disk type='file' device='disk'>\n"
           "      <driver name='qemu' type='qcow2'/>\n"
           "      <source file='" + env.top + "'/>\n"
           "      <backingStore type='file'>\n"
           "        <format type='qcow2'/>\n"
           "        <source file='" + env.base + "'/>\n"
           "        <backingStore/>\n"
           "      </backingStore>\n"
           "      <target dev='vda' bus='virtio'/>\n"
           "    </disk>\n"
           "    <disk type='file' device='disk'>\n"
           "      <driver name='qemu' type='raw'/>\n"
           "      <source file='" + env.data + "'/>\n"
           "      <target dev='vdb' bus='virtio'/>\n"
           "    </disk>\n"
           "    <controller type='virtio-serial' index='0'/>\n"
           "    <serial type='file'>\n"
           "      <source path='" + env.serial + "'/>\n"
           "      <target type='isa-serial' port='0'/>\n"
           "    </serial>\n"
           "    <channel type='unix'>\n"
           "      <source mode='bind'/>\n"
           "      <target type='virtio' name='org.qemu.guest_agent.0'/>\n"
           "    </channel>\n"
           "    <memballoon model='none'/>\n"
           "  </devices>\n"
           "</domain>\n";
}

Result<std::unique_ptr<DomainProcess>> start_domain(const Env &env, const std::string &xml, Events &events,
                                                    bool paused = false) {
    auto def = TRY(conf::DomainDef::parse_string(xml, 0));
    def->id = 1;
    DomainProcess::StartOptions opts;
    opts.paused = paused;
    opts.host.kvm_usable = false;
    opts.host.kvm_reason = "test: TCG only";
    opts.host.file_exists = [](const std::string &p) { return file::exists(p); };
    return DomainProcess::start(*def, env.paths, opts, events.handler());
}

bool runtime_files_gone(const ProcessPaths &p) {
    return !file::exists(p.status_file) && !file::exists(p.monitor_socket) && !file::exists(p.agent_socket) &&
           !file::exists(p.pidfile);
}

void reap_if_child(pid_t pid) {
    // A QEMU we dropped without stopping is still our child: do not leave a zombie.
    int status;
    ::waitpid(pid, &status, WNOHANG);
}

void case_main_guest(Tap &tap, Env &env) {
    Events events;
    std::string xml = domain_xml(env, "vsproc");
    auto started = start_domain(env, xml, events);
    if (!tap.ok(started.has_value(), "start boots QEMU", started ? "" : started.error().message())) return;
    std::unique_ptr<DomainProcess> proc = std::move(*started);
    pid_t pid = proc->pid();

    auto [state, reason] = proc->state();
    tap.ok(state == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_BOOTED, "state is running/booted");
    tap.ok(events.wait(VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED, seconds(1)).has_value(),
           "STARTED/BOOTED event");
    tap.ok(process::pid_alive(pid), "QEMU runs");
    tap.ok(::getsid(pid) == pid, "QEMU leads its own session (survives the daemon)");

    auto st = DomainStatus::load(env.paths.status_file);
    tap.ok(st && st->pid == pid && st->state == VIR_DOMAIN_RUNNING && st->start_time != 0,
           "status file records pid, start time and state", st ? "" : st.error().message());
    const DiskNodeNames *vda = st ? st->disk("vda") : nullptr;
    tap.ok(vda && vda->layers.size() == 2, "status records both layers of vda");
    tap.ok(st && !st->agent_path.empty() && st->agent_path == env.paths.agent_socket,
           "status records the agent socket");
    auto log = file::read(env.paths.log_file, 1 << 20);
    tap.ok(log && log->find("starting up virtsnap") != std::string::npos &&
               log->find("-no-shutdown") != std::string::npos,
           "log has the header and command line");

    bool beats = wait_until([&] { return count_heartbeats(env.serial) >= 5; }, seconds(90));
    tap.ok(beats, "heartbeat seen on the serial console",
           [&] {
               auto text = file::read(env.serial, 1 << 20);
               return text ? text->substr(0, 2000) : std::string("(no serial output)");
           }());

    // suspend / resume
    events.take();
    Status s = proc->suspend();
    tap.ok(s.has_value(), "suspend", s ? "" : s.error().message());
    std::tie(state, reason) = proc->state();
    tap.ok(state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_USER, "state is paused/user");
    tap.ok(events.wait(VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_PAUSED, seconds(5)).has_value(),
           "SUSPENDED/PAUSED event");
    auto paused_st = DomainStatus::load(env.paths.status_file);
    tap.ok(paused_st && paused_st->state == VIR_DOMAIN_PAUSED, "status file says paused");
    size_t before = count_heartbeats(env.serial);
    std::this_thread::sleep_for(milliseconds(500));
    tap.ok(count_heartbeats(env.serial) == before, "no heartbeat while paused");
    s = proc->resume();
    tap.ok(s.has_value(), "resume", s ? "" : s.error().message());
    std::tie(state, reason) = proc->state();
    tap.ok(state == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_UNPAUSED, "state is running/unpaused");
    tap.ok(events.wait(VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_UNPAUSED, seconds(5)).has_value(),
           "RESUMED/UNPAUSED event");
    tap.ok(wait_until([&] { return count_heartbeats(env.serial) > before; }, seconds(10)), "heartbeats resume");

    // guest agent: freeze and thaw the mounted ext4 filesystem
    bool ready = wait_until([&] { return serial_has(env.serial, "VSGUEST ready"); }, seconds(60));
    if (!proc->agent()) {
        tap.ok(false, "guest agent connected");
    } else if (ready) {
        std::this_thread::sleep_for(seconds(1));
        auto frozen = proc->agent()->fsfreeze_freeze();
        tap.ok(frozen.has_value(), "agent freezes filesystems", frozen ? "" : frozen.error().message());
        auto fs1 = proc->agent()->fsfreeze_status();
        tap.ok(fs1 && *fs1 == "frozen", "fsfreeze status is frozen");
        auto thawed = proc->agent()->fsfreeze_thaw();
        tap.ok(thawed.has_value(), "agent thaws filesystems", thawed ? "" : thawed.error().message());
        auto fs2 = proc->agent()->fsfreeze_status();
        tap.ok(fs2 && *fs2 == "thawed", "fsfreeze status is thawed");
    } else {
        tap.ok(false, "guest ready for the agent", "no 'VSGUEST ready' on the serial console");
    }

    // re-attach: drop the object (a daemon exit), QEMU keeps running
    std::vector<DiskNodeNames> graph = proc->block_graph();
    proc.reset();
    tap.ok(process::pid_alive(pid), "dropping the DomainProcess leaves QEMU running");
    tap.ok(file::exists(env.paths.status_file), "status file stays for the next daemon");
    Events events2;
    auto again = DomainProcess::reattach(env.paths, events2.handler());
    if (!tap.ok(again && again->process, "re-attach finds the running QEMU",
                again ? "process gone" : again.error().message())) {
        process::kill_pid(pid, seconds(1)).has_value();
        reap_if_child(pid);
        return;
    }
    proc = std::move(again->process);
    tap.eq(int(proc->pid()), int(pid), "re-attached to the same pid");
    std::tie(state, reason) = proc->state();
    tap.ok(state == VIR_DOMAIN_RUNNING, "re-attached domain is running");
    tap.ok(proc->block_graph() == graph && !graph.empty(), "block graph known after re-attach");
    auto nodes = proc->known_nodes();
    bool all_known = true;
    for (const auto &d : graph)
        for (const auto &l : d.layers)
            all_known &= std::count(nodes.begin(), nodes.end(), l.format) == 1 &&
                         std::count(nodes.begin(), nodes.end(), l.storage) == 1;
    tap.ok(all_known, "QEMU confirms every recorded node name");
    s = proc->suspend();
    tap.ok(s && events2.wait(VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_PAUSED, seconds(5)),
           "monitor works after re-attach (suspend + event)");
    s = proc->resume();
    tap.ok(s.has_value(), "resume after re-attach");
    tap.ok(proc->agent() != nullptr && proc->agent()->ping().has_value(), "agent reconnected after re-attach");

    // ACPI shutdown: the guest's power-button handler powers it off
    events2.take();
    s = proc->shutdown(VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN);
    tap.ok(s.has_value(), "ACPI shutdown request is sent", s ? "" : s.error().message());
    auto shut = events2.wait(VIR_DOMAIN_EVENT_SHUTDOWN, VIR_DOMAIN_EVENT_SHUTDOWN_GUEST, seconds(15));
    if (!shut) {
        // The test guest's power-button watcher needs evdev, which its
        // initramfs may lack: then power it off through qemu-ga instead.
        tap.note("guest did not act on the ACPI power button; shutting down through the guest agent");
        s = proc->shutdown(VIR_DOMAIN_SHUTDOWN_GUEST_AGENT);
        tap.ok(s.has_value(), "guest agent shutdown request is sent", s ? "" : s.error().message());
        shut = events2.wait(VIR_DOMAIN_EVENT_SHUTDOWN, VIR_DOMAIN_EVENT_SHUTDOWN_GUEST, seconds(60));
    }
    tap.ok(shut.has_value(), "SHUTDOWN/GUEST event (guest powered off)", [&] {
        std::string diag;
        for (const auto &e : events2.take())
            diag += "event " + std::to_string(e.event) + "/" + std::to_string(e.detail) + "\n";
        auto text = file::read(env.serial, 1 << 24);
        if (text) diag += text->substr(text->size() > 1500 ? text->size() - 1500 : 0);
        return diag;
    }());
    auto stopped = events2.wait(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN, seconds(30));
    tap.ok(stopped.has_value(), "STOPPED/SHUTDOWN event");
    std::tie(state, reason) = proc->state();
    tap.ok(state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_SHUTDOWN, "state is shutoff/shutdown");
    tap.ok(!process::pid_alive(pid), "QEMU is gone after shutdown");
    tap.ok(runtime_files_gone(env.paths), "status file and sockets removed after shutdown");
    if (!stopped) {
        (void)proc->destroy();
        reap_if_child(pid);
    }
    auto log2 = file::read(env.paths.log_file, 1 << 20);
    tap.ok(log2 && log2->find("shutting down, reason=shutdown") != std::string::npos, "log notes the shutdown");
}

void case_destroy(Tap &tap, Env &env) {
    Events events;
    auto started = start_domain(env, domain_xml(env, "vsproc"), events);
    if (!tap.ok(started.has_value(), "start for destroy", started ? "" : started.error().message())) return;
    auto proc = std::move(*started);
    pid_t pid = proc->pid();
    Status s = proc->destroy();
    tap.ok(s.has_value(), "destroy", s ? "" : s.error().message());
    auto [state, reason] = proc->state();
    tap.ok(state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_DESTROYED, "state is shutoff/destroyed");
    auto ev = events.wait(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED, seconds(1));
    tap.ok(ev.has_value(), "STOPPED/DESTROYED event");
    // QEMU catches SIGTERM and exits cleanly ("terminating on signal 15").
    tap.ok(ev && ev->exit && ev->exit->success(), "QEMU exited on SIGTERM",
           ev && ev->exit ? ev->exit->describe() : "no exit status");
    tap.ok(!process::pid_alive(pid), "QEMU is gone (and reaped)");
    tap.ok(runtime_files_gone(env.paths), "status file and sockets removed after destroy");
    bool no_shutdown_event = true;
    for (const auto &e : events.take()) no_shutdown_event &= e.event != VIR_DOMAIN_EVENT_SHUTDOWN;
    tap.ok(no_shutdown_event, "no SHUTDOWN event for a destroy");
    Status again = proc->destroy();
    tap.ok(!again && again.error().code == VIR_ERR_OPERATION_INVALID &&
               again.error().detail == "domain is not running",
           "second destroy: domain is not running");
}

void case_crash(Tap &tap, Env &env) {
    Events events;
    auto started = start_domain(env, domain_xml(env, "vsproc"), events);
    if (!tap.ok(started.has_value(), "start for kill -9", started ? "" : started.error().message())) return;
    auto proc = std::move(*started);
    pid_t pid = proc->pid();
    ::kill(pid, SIGKILL);
    auto ev = events.wait(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_FAILED, seconds(30));
    tap.ok(ev.has_value(), "kill -9 of QEMU is detected (STOPPED/FAILED)");
    tap.ok(ev && ev->exit && ev->exit->signal == SIGKILL, "exit reason is signal 9",
           ev && ev->exit ? ev->exit->describe() : "no exit status");
    auto [state, reason] = proc->state();
    tap.ok(state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_CRASHED, "state is shutoff/crashed");
    tap.ok(runtime_files_gone(env.paths), "status file and sockets removed after the crash");
    auto log = file::read(env.paths.log_file, 1 << 20);
    tap.ok(log && log->find("shutting down, reason=crashed") != std::string::npos, "log notes the crash");
}

void case_reattach_dead(Tap &tap, Env &env) {
    Events events;
    auto started = start_domain(env, domain_xml(env, "vsproc"), events);
    if (!tap.ok(started.has_value(), "start for dead re-attach", started ? "" : started.error().message())) return;
    pid_t pid = (*started)->pid();
    started->reset();   // the daemon goes away ...
    ::kill(pid, SIGKILL);   // ... and QEMU dies while nobody watches
    int status = 0;
    ::waitpid(pid, &status, 0);
    Events events2;
    auto again = DomainProcess::reattach(env.paths, events2.handler());
    tap.ok(again && !again->process, "re-attach to a dead QEMU reports it gone",
           again ? "" : again.error().message());
    tap.ok(again && again->shutoff_reason == VIR_DOMAIN_SHUTOFF_CRASHED, "reason is crashed (-no-shutdown QEMU)");
    tap.ok(again && again->status.pid == pid, "the old status is returned");
    tap.ok(runtime_files_gone(env.paths), "stale status file and sockets removed");
}

void case_paused_start(Tap &tap, Env &env) {
    Events events;
    auto started = start_domain(env, domain_xml(env, "vsproc"), events, true);
    if (!tap.ok(started.has_value(), "paused start", started ? "" : started.error().message())) return;
    auto proc = std::move(*started);
    auto [state, reason] = proc->state();
    tap.ok(state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_USER, "state is paused/user");
    tap.ok(events.wait(VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED, seconds(1)).has_value() &&
               events.wait(VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_PAUSED, seconds(1)).has_value(),
           "STARTED/BOOTED then SUSPENDED/PAUSED events");
    auto qs = proc->monitor().query_status();
    tap.ok(qs && !qs->running, "QEMU's vCPUs are stopped");
    tap.ok(proc->destroy().has_value(), "destroy the paused domain");
}

void case_failed_start(Tap &tap, Env &env) {
    Events events;
    std::string xml = domain_xml(env, "vsproc");
    // A backing file that does not exist: QEMU refuses the -blockdev and exits.
    std::string missing = env.tmp + "/missing-base.qcow2";
    xml.replace(xml.find(env.base), env.base.size(), missing);
    auto started = start_domain(env, xml, events);
    tap.ok(!started, "start with a missing image fails");
    if (started) {
        (void)(*started)->destroy();
        return;
    }
    const Error &e = started.error();
    tap.ok(e.code == VIR_ERR_INTERNAL_ERROR &&
               e.detail.rfind("qemu unexpectedly closed the monitor: ", 0) == 0 &&
               e.detail.find("missing-base.qcow2") != std::string::npos,
           "error is libvirt's, quoting QEMU's log", e.message());
    tap.ok(runtime_files_gone(env.paths), "nothing left behind by the failed start");
    tap.ok(events.take().empty(), "no lifecycle event for a failed start");
}

// A domain whose only disk vda is `disk_xml`, running the counter on it.
std::string counter_domain_xml(const Env &env, const std::string &name, const std::string &disk_xml,
                               const std::string &serial) {
    return "<domain type='qemu'>\n"
           "  <name>" + name + "</name>\n"
           "  <uuid>7a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d</uuid>\n"
           "  <memory unit='KiB'>262144</memory>\n"
           "  <vcpu placement='static'>1</vcpu>\n"
           "  <os>\n"
           "    <type arch='x86_64' machine='pc'>hvm</type>\n"
           "    <kernel>" + env.cache + "/vmlinuz</kernel>\n"
           "    <initrd>" + env.cache + "/initramfs.img</initrd>\n"
           "    <cmdline>console=ttyS0 quiet vs.counter=/dev/vda vs.counter_ms=5</cmdline>\n"
           "  </os>\n"
           "  <features>\n    <acpi/>\n  </features>\n"
           "  <devices>\n"
           "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n" + disk_xml +
           "    <serial type='file'>\n"
           "      <source path='" + serial + "'/>\n"
           "      <target type='isa-serial' port='0'/>\n"
           "    </serial>\n"
           "    <memballoon model='none'/>\n"
           "  </devices>\n"
           "</domain>\n";
}

std::string qcow2_disk(const std::string &path) {
    return "    <disk type='file' device='disk'>\n"
           "      <driver name='qemu' type='qcow2'/>\n"
           "      <source file='" + path + "'/>\n"
           "      <target dev='vda' bus='virtio'/>\n"
           "    </disk>\n";
}

// The counters the guest printed ("VSCNT <n>"), in order.
std::vector<long> counters_seen(const std::string &serial) {
    std::vector<long> out;
    auto text = file::read(serial, 64 * 1024 * 1024);
    if (!text) return out;
    size_t pos = 0;
    while ((pos = text->find("VSCNT ", pos)) != std::string::npos) {
        pos += 6;
        out.push_back(std::strtol(text->c_str() + pos, nullptr, 10));
    }
    return out;
}

// tests/guest/read-counter IMAGE: the last counter round the image holds, or -1.
long image_counter(const std::string &image) {
    process::SpawnOptions o;
    o.argv = {test::source_dir() + "/guest/read-counter", "--format", "qcow2", image};
    auto r = process::run_capture(o);
    if (!r || !r->status.success()) return -1;
    auto at = r->out.find("counter=");
    return at == std::string::npos ? -1 : std::strtol(r->out.c_str() + at + 8, nullptr, 10);
}

Result<std::unique_ptr<DomainProcess>> start_probed(const Env &env, const std::string &xml, Events &events) {
    auto def = TRY(conf::DomainDef::parse_string(xml, 0));
    def->id = 2;
    DomainProcess::StartOptions opts;
    opts.host = probe_host();   // what the daemon uses: real files, probed capabilities
    return DomainProcess::start(*def, env.paths, opts, events.handler());
}

// An overlay whose XML has no <backingStore>: the chain is completed from the
// image (as libvirt does), so the guest sees the base's data. Without that,
// QEMU would get "backing": null and the guest an empty disk.
void case_implicit_backing(Tap &tap, Env &env) {
    std::string base = env.tmp + "/chain-base.qcow2", top = env.tmp + "/chain-top.qcow2";
    std::string serial1 = env.tmp + "/chain-serial1.log", serial2 = env.tmp + "/chain-serial2.log";
    if (!tap.ok(process::run(std::vector<std::string>{"qemu-img", "create", "-q", "-f", "qcow2", base, "16M"}).has_value(),
                "chain: base image created"))
        return;
    // 1. The guest writes its counter into the base itself.
    {
        Events events;
        auto started = start_probed(env, counter_domain_xml(env, "vsproc", qcow2_disk(base), serial1), events);
        if (!tap.ok(started.has_value(), "chain: start on the base", started ? "" : started.error().message())) return;
        bool wrote = wait_until([&] { auto c = counters_seen(serial1); return !c.empty() && c.back() >= 100; },
                                seconds(120));
        tap.ok(wrote, "chain: guest wrote 100 counter rounds into the base");
        tap.ok((*started)->monitor().caps() && (*started)->monitor().caps()->has_snapshot_jobs(),
               "chain: the monitor holds the probed capabilities");
        tap.ok((*started)->destroy().has_value(), "chain: destroy the first guest");
    }
    long in_base = image_counter(base);
    tap.ok(in_base >= 100, "chain: read-counter finds the rounds in the base", std::to_string(in_base));

    // 2. An overlay on it, named in the XML without any <backingStore>.
    if (!tap.ok(process::run(std::vector<std::string>{"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                                                      base, top})
                    .has_value(),
                "chain: overlay created"))
        return;
    auto earlier = file::read(env.paths.log_file, 1 << 22);
    size_t log_start = earlier ? earlier->size() : 0;
    Events events;
    auto started = start_probed(env, counter_domain_xml(env, "vsproc", qcow2_disk(top), serial2), events);
    if (!tap.ok(started.has_value(), "chain: start on the overlay", started ? "" : started.error().message())) return;
    auto proc = std::move(*started);
    auto live = proc->live_def();
    const conf::DomainDisk *vda = live ? live->disk_by_target("vda") : nullptr;
    tap.ok(vda && vda->src.backing && vda->src.backing->path == base && vda->src.backing->format == "qcow2" &&
               vda->src.backing->backing_terminated,
           "chain: the live definition shows the base found in the image");
    auto graph = proc->block_graph();
    tap.ok(graph.size() == 1 && graph[0].layers.size() == 2, "chain: QEMU got both layers as nodes");
    auto full_log = file::read(env.paths.log_file, 1 << 22);
    std::string cmdline_log = full_log && full_log->size() > log_start ? full_log->substr(log_start) : std::string();
    // The base was allocated first (libvirt-1), the overlay on top of it.
    tap.ok(cmdline_log.find("\"filename\":\"" + base + "\",\"node-name\":\"libvirt-1-storage\"") != std::string::npos &&
               cmdline_log.find("\"file\":\"libvirt-2-storage\",\"backing\":\"libvirt-1-format\"") != std::string::npos,
           "chain: the command line names the base as the overlay's backing node");
    // The guest continues from the highest counter on its disk: the base's.
    bool counted = wait_until([&] { return !counters_seen(serial2).empty(); }, seconds(120));
    auto seen = counters_seen(serial2);
    tap.ok(counted && !seen.empty() && seen.front() == in_base + 1, "chain: the guest sees the base's data",
           seen.empty() ? "no counter printed" : "first counter " + std::to_string(seen.front()) + ", base holds " +
                                                  std::to_string(in_base));
    tap.ok(proc->destroy().has_value(), "chain: destroy");
    tap.eq(image_counter(base), in_base, "chain: the base was not written through the overlay");
    tap.ok(image_counter(top) > in_base, "chain: the overlay holds the new rounds");
}

// The image's backing file is gone: libvirt's error, before any QEMU runs.
void case_implicit_backing_missing(Tap &tap, Env &env) {
    std::string base = env.tmp + "/gone-base.qcow2", top = env.tmp + "/gone-top.qcow2";
    bool made = process::run(std::vector<std::string>{"qemu-img", "create", "-q", "-f", "qcow2", base, "16M"}) &&
                process::run(std::vector<std::string>{"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                                                      base, top}) &&
                file::remove(base, VIR_FROM_NONE);
    if (!tap.ok(made, "missing base: overlay created, base removed")) return;
    auto before = file::read(env.paths.log_file, 1 << 22);
    Events events;
    auto started = start_probed(env, counter_domain_xml(env, "vsproc", qcow2_disk(top), env.tmp + "/gone.log"), events);
    tap.ok(!started, "missing base: start fails");
    if (started) {
        (void)(*started)->destroy();
        return;
    }
    const Error &e = started.error();
    std::string want = "Cannot access backing file '" + base + "' of storage file '" + top + "' (as uid:" +
                       std::to_string(::geteuid()) + ", gid:" + std::to_string(::getegid()) +
                       "): No such file or directory";
    tap.ok(e.code == VIR_ERR_SYSTEM_ERROR && e.domain == VIR_FROM_STORAGE && e.detail == want,
           "missing base: libvirt's error", e.message());
    auto after = file::read(env.paths.log_file, 1 << 22);
    tap.ok(after && after->find("starting up virtsnap", before ? before->size() : 0) == std::string::npos,
           "missing base: no QEMU was started");
    tap.ok(runtime_files_gone(env.paths) && events.take().empty(), "missing base: nothing left, no event");
}

char proc_state(pid_t pid) {
    auto text = file::read("/proc/" + std::to_string(pid) + "/stat", 64 * 1024);
    if (!text) return '?';
    size_t close = text->rfind(')');
    return close != std::string::npos && close + 2 < text->size() ? (*text)[close + 2] : '?';
}

// A QEMU that does not act on SIGTERM (stopped with SIGSTOP, so the signal
// stays pending): a graceful destroy gives up with libvirt's error, a plain
// one escalates to SIGKILL.
void case_destroy_escalation(Tap &tap, Env &env) {
    Events events;
    auto started = start_domain(env, domain_xml(env, "vsproc"), events);
    if (!tap.ok(started.has_value(), "escalation: start", started ? "" : started.error().message())) return;
    auto proc = std::move(*started);
    pid_t pid = proc->pid();
    ::kill(pid, SIGSTOP);
    tap.ok(wait_until([&] { return proc_state(pid) == 'T'; }, seconds(10)), "escalation: QEMU stopped with SIGSTOP");
    Status graceful = proc->destroy(VIR_DOMAIN_DESTROY_GRACEFUL, milliseconds(500));
    tap.ok(!graceful && graceful.error().code == VIR_ERR_SYSTEM_ERROR &&
               graceful.error().detail == "Failed to terminate process " + std::to_string(pid) +
                                              " with SIGTERM: Device or resource busy",
           "escalation: graceful destroy fails as libvirt's", graceful ? "" : graceful.error().message());
    tap.ok(proc->active() && process::pid_alive(pid), "escalation: still running after the graceful attempt");
    Status s = proc->destroy(0, seconds(1));
    tap.ok(s.has_value(), "escalation: destroy", s ? "" : s.error().message());
    auto ev = events.wait(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED, seconds(1));
    tap.ok(ev && ev->exit && ev->exit->signal == SIGKILL, "escalation: QEMU ended by SIGKILL",
           ev && ev->exit ? ev->exit->describe() : "no exit status");
    auto [state, reason] = proc->state();
    tap.ok(state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_DESTROYED && !process::pid_alive(pid),
           "escalation: shutoff/destroyed, QEMU gone");
    tap.ok(runtime_files_gone(env.paths), "escalation: runtime files removed");
}

// `qemuprocesstest --start-detached DIR XML`: starts the domain and exits,
// leaving QEMU to be re-attached by a process that is not its parent.
int start_detached(const std::string &root, const std::string &xml_path) {
    auto layout = StateLayout::embedded(root);
    if (!layout) return 2;
    auto paths = ProcessPaths::for_domain(*layout, "vsproc");
    auto xml = file::read(xml_path, 1 << 20);
    if (!paths || !xml) return 2;
    auto def = conf::DomainDef::parse_string(*xml, 0);
    if (!def) return 2;
    (*def)->id = 3;
    DomainProcess::StartOptions opts;
    opts.host.file_exists = [](const std::string &p) { return file::exists(p); };
    auto started = DomainProcess::start(**def, *paths, opts, nullptr);
    if (!started) {
        std::fprintf(stderr, "%s\n", started.error().message().c_str());
        return 1;
    }
    std::printf("%d\n", int((*started)->pid()));
    return 0;   // dropping the DomainProcess leaves QEMU running
}

// Crash of a QEMU this process re-attached to but did not start: it is not
// our child, so it is watched through its pidfd and cannot be reaped.
void case_reattach_not_child(Tap &tap, Env &env) {
    std::string xml_path = env.tmp + "/detached.xml";
    if (!tap.ok(file::write_atomic(xml_path, domain_xml(env, "vsproc"), 0600).has_value(), "not child: XML written"))
        return;
    process::SpawnOptions o;
    o.argv = {"/proc/self/exe", "--start-detached", env.tmp + "/root", xml_path};
    auto helper = process::run_capture(o, std::chrono::minutes(2));
    pid_t pid = helper && helper->status.success() ? pid_t(std::atoi(helper->out.c_str())) : 0;
    if (!tap.ok(pid > 0, "not child: another process started QEMU",
                helper ? helper->err : helper.error().message()))
        return;
    tap.ok(::getppid() != pid && ::waitpid(pid, nullptr, WNOHANG) < 0 && errno == ECHILD,
           "not child: QEMU is not our child");

    std::string daemon_log = env.tmp + "/daemon.log";
    log::configure(2, "", daemon_log);
    Events events;
    auto att = DomainProcess::reattach(env.paths, events.handler());
    if (!tap.ok(att && att->process, "not child: re-attached", att ? "process gone" : att.error().message())) {
        log::configure_from_env();
        (void)process::kill_pid(pid, seconds(1));
        return;
    }
    auto proc = std::move(att->process);
    tap.ok(proc->monitor().caps() && proc->monitor().caps()->has_command("query-status"),
           "not child: capabilities asked of the running QEMU");
    ::kill(pid, SIGKILL);
    auto ev = events.wait(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_FAILED, seconds(30));
    tap.ok(ev.has_value(), "not child: kill -9 detected through monitor EOF and pidfd (STOPPED/FAILED)");
    tap.ok(ev && !ev->exit, "not child: no exit status is made up (waitid cannot reap it)");
    auto [state, reason] = proc->state();
    tap.ok(state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_CRASHED, "not child: reason is crashed");
    tap.ok(runtime_files_gone(env.paths), "not child: runtime files removed");
    auto qlog = file::read(env.paths.log_file, 1 << 22);
    tap.ok(qlog && qlog->rfind("shutting down, reason=crashed") != std::string::npos,
           "not child: domain log notes the crash as libvirt does");
    proc.reset();
    log::configure_from_env();
    auto dlog = file::read(daemon_log, 1 << 22);
    std::string said = "QEMU of 'vsproc' (pid " + std::to_string(pid) +
                       ") ended; its exit status is unknown: it is not a child of this daemon";
    tap.ok(dlog && dlog->find(said) != std::string::npos, "not child: daemon log says what is known", said);
}

int integration_tests(Tap &tap) {
    Env env;
    const char *cache_env = std::getenv("VIRTSNAP_GUEST_CACHE");
    env.cache = cache_env && *cache_env ? cache_env : test::source_dir() + "/guest/cache";
    process::SpawnOptions build_opts;
    build_opts.argv = {test::source_dir() + "/guest/build-guest.sh", env.cache};
    auto build = process::run_capture(build_opts);
    if (!build || build->status.code == 77 || !build->status.success()) {
        std::string why = !build ? build.error().message() : build->err.substr(build->err.size() > 300 ? build->err.size() - 300 : 0);
        tap.skip("integration tests", "test guest cannot be built: " + why);
        return tap.finish();
    }
    if (!file::exists("/usr/bin/qemu-system-x86_64")) {
        tap.skip("integration tests", "qemu-system-x86_64 is not installed");
        return tap.finish();
    }
    env.tmp = test::temp_dir("qemuprocesstest");
    env.serial = env.tmp + "/serial.log";
    env.base = env.tmp + "/base.qcow2";
    env.top = env.tmp + "/top.qcow2";
    env.data = env.tmp + "/data.raw";
    auto layout = StateLayout::embedded(env.tmp + "/root");
    if (!tap.ok(layout.has_value(), "embedded state layout")) return tap.finish();
    env.layout = std::make_unique<StateLayout>(std::move(*layout));
    tap.ok(env.layout->create_dirs().has_value(), "state directories created");
    auto paths = ProcessPaths::for_domain(*env.layout, "vsproc");
    if (!tap.ok(paths.has_value(), "process paths")) return tap.finish();
    env.paths = *paths;

    auto img1 = process::run(std::vector<std::string>{"qemu-img", "create", "-q", "-f", "qcow2", env.base, "64M"});
    auto img2 = process::run(std::vector<std::string>{"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", env.base, env.top});
    auto img3 = process::run(std::vector<std::string>{"qemu-img", "create", "-q", "-f", "raw", env.data, "32M"});
    auto mkfs = img3 ? process::run(std::vector<std::string>{"mkfs.ext4", "-q", "-F", env.data}) : img3;
    if (!tap.ok(img1 && img2 && img3 && mkfs, "disk images created")) return tap.finish();

    case_main_guest(tap, env);
    case_destroy(tap, env);
    case_crash(tap, env);
    case_reattach_dead(tap, env);
    case_paused_start(tap, env);
    case_failed_start(tap, env);
    case_destroy_escalation(tap, env);
    case_reattach_not_child(tap, env);
    case_implicit_backing(tap, env);
    case_implicit_backing_missing(tap, env);
    return tap.finish();
}

}  // namespace

int main(int argc, char **argv) {
    std::string mode = argc > 1 ? argv[1] : "--unit";
    if (mode == "--start-detached" && argc == 4) return start_detached(argv[2], argv[3]);
    Tap tap;
    if (mode == "--integration") return integration_tests(tap);
    unit_tests(tap);
    return tap.finish();
}
