// capabilities.hh - what a QEMU binary can do, found by asking it.
//
// The binary is started with no guest (-machine none, -S) and a QMP socket;
// commands and events come from query-qmp-schema, migration capabilities from
// query-migrate-capabilities, machine types from query-machines. Features are
// decided from these, never from the version number (kept for information).
// QEMU 7.2 (Debian 12) and 10.0 (bookworm-backports) are both expected.
//
// KVM is three separate facts, because on some hosts /dev/kvm opens and QEMU
// starts with -accel kvm, yet guests hang: kvm_device_opens, kvm_accel_starts
// (QEMU with -accel kvm reports KVM enabled) and kvm_runs_guest_code (a 64 KiB
// firmware that goes from real mode through protected mode and paging to long
// mode, as every kernel does, and then writes to isa-debug-exit, made QEMU
// exit under KVM). That is necessary, not sufficient, for real guests; it is
// where guests hang on the hosts this was written on (after the kernel's
// real-mode setup), and host_probe.hh refuses type='kvm' without it.
#pragma once

#include "qemu/monitor_types.hh"
#include "util/result.hh"

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace virtsnap::qemu {

class Monitor;

struct QemuCaps {
    std::string binary;
    int64_t mtime_ns = 0;

    // Informational only.
    int major = 0, minor = 0, micro = 0;
    std::string package;
    std::string version() const;

    std::set<std::string> commands;
    std::set<std::string> events;
    std::set<std::string> migration_capabilities;
    std::vector<MachineInfo> machines;
    std::string default_machine;

    bool kvm_device_opens = false;
    bool kvm_accel_starts = false;
    bool kvm_runs_guest_code = false;
    std::string kvm_reason;   // why KVM does not run guests, when probed and it does not

    // The gated order of instant snapshots (migration_gate.hh) is sound: a
    // background snapshot held at its first write leaves the monitor
    // answering (QEMU 7.2; not 10.0, which holds its main lock there).
    // Probed by holding one in the -machine none run.
    bool background_snapshot_gate_safe = false;
    std::string gate_reason;  // why not, when probed and it is not

    bool has_command(const std::string &name) const { return commands.count(name) != 0; }
    bool has_event(const std::string &name) const { return events.count(name) != 0; }
    bool has_migration_capability(const std::string &name) const {
        return migration_capabilities.count(name) != 0;
    }
    // snapshot-save, snapshot-load and snapshot-delete jobs (QEMU >= 6.0).
    bool has_snapshot_jobs() const;
    bool has_blockdev_reopen() const { return has_command("blockdev-reopen"); }
    bool has_background_snapshot() const { return has_migration_capability("background-snapshot"); }
    bool has_machine(const std::string &name) const;
};

struct ProbeOptions {
    bool probe_kvm = true;
    std::chrono::milliseconds timeout{20000};  // per QEMU run
};

// Runs `binary` and probes it (two or three short QEMU runs with probe_kvm).
[[nodiscard]] Result<QemuCaps> probe_qemu(const std::string &binary, const ProbeOptions &options = {});

// Only the KVM facts (and kvm_reason) of `binary`: at most two short QEMU
// runs, the second bounded by min(options.timeout, 10 s) when guests hang.
void probe_kvm(const std::string &binary, const ProbeOptions &options, QemuCaps &caps);

// Runs the test guest kvm_runs_guest_code is about under `accel` ("kvm";
// "tcg" checks the test guest itself): empty when it reached long mode and
// exited within min(options.timeout, 10 s), else why not.
std::string run_probe_guest(const std::string &binary, const std::string &accel, const ProbeOptions &options = {});

// Commands, events and migration capabilities of an already running QEMU,
// over its monitor: what a re-attached process can do, even if its binary
// has been replaced since it started.
[[nodiscard]] Result<QemuCaps> probe_running(Monitor &monitor, const std::string &binary);

// Probe results per binary path, reused while the binary's mtime is unchanged
// (a daemon keeps one for its whole run: host_probe.hh).
class QemuCapsCache {
public:
    explicit QemuCapsCache(ProbeOptions options = {}) : options_(options) {}
    [[nodiscard]] Result<std::shared_ptr<const QemuCaps>> get(const std::string &binary);
    // How many probes ran (tests check that the cache is used).
    int probes() const;

private:
    ProbeOptions options_;
    mutable std::mutex mu_;
    std::map<std::string, std::shared_ptr<const QemuCaps>> cache_;
    int probes_ = 0;
};

}  // namespace virtsnap::qemu
