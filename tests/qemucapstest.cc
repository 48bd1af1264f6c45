// qemucapstest.cc - capability probing against the real QEMU binary
// (integration suite): commands, events, migration capabilities, machine
// types and KVM are found by asking QEMU; results are cached per binary; the
// daemon's cache and KVM verdict (host_probe.hh).

#include "qemu/capabilities.hh"
#include "qemu/host_probe.hh"
#include "testutils/tap.hh"
#include "util/process.hh"

#include <cstdlib>

#include <unistd.h>

using namespace virtsnap;
using namespace virtsnap::qemu;
using virtsnap::test::Tap;

int main() {
    Tap tap;
    const char *env = std::getenv("VIRTSNAP_QEMU");
    std::string binary = env ? env : "/usr/bin/qemu-system-x86_64";
    if (::access(binary.c_str(), X_OK) != 0) {
        tap.skip("probe " + binary, "QEMU binary not installed");
        return tap.finish();
    }

    QemuCapsCache cache;
    auto caps = cache.get(binary);
    if (!tap.ok(caps.has_value(), "probe succeeds", caps ? "" : caps.error().message())) return tap.finish();
    const QemuCaps &c = **caps;
    tap.note("QEMU " + c.version() + " (" + c.package + "), default machine " + c.default_machine + ", kvm " +
             std::to_string(c.kvm_device_opens) + "/" + std::to_string(c.kvm_accel_starts) + "/" +
             std::to_string(c.kvm_runs_guest_code));
    tap.ok(c.major >= 7, "version from the greeting");
    tap.ok(c.has_command("query-status") && c.has_command("blockdev-add") && c.has_command("transaction") &&
               c.has_command("query-qmp-schema"),
           "commands from query-qmp-schema", std::to_string(c.commands.size()));
    tap.ok(c.has_event("JOB_STATUS_CHANGE") && c.has_event("STOP") && c.has_event("BLOCK_JOB_COMPLETED"),
           "events from query-qmp-schema");
    tap.ok(c.has_snapshot_jobs(), "snapshot-save/load/delete jobs (QEMU >= 6.0)");
    tap.ok(c.has_blockdev_reopen(), "blockdev-reopen");
    tap.ok(c.has_background_snapshot(), "background-snapshot migration capability");
    tap.ok(c.has_migration_capability("multifd") && !c.has_migration_capability("no-such-capability"),
           "migration capabilities from query-migrate-capabilities");
    tap.ok(!c.default_machine.empty() && c.has_machine("pc") && c.has_machine("q35"), "machine types");
    tap.ok(!c.kvm_runs_guest_code || (c.kvm_accel_starts && c.kvm_device_opens), "KVM facts are consistent");
    tap.ok(c.kvm_runs_guest_code == c.kvm_reason.empty(), "KVM: a reason exactly when guests do not run",
           c.kvm_reason);
    // The gate verdict (migration_gate.hh), measured: QEMU 7.2 answers its
    // monitor with a background snapshot held at its first write, 10.0 does not.
    tap.ok(c.background_snapshot_gate_safe == c.gate_reason.empty(), "snapshot gate: a reason exactly when unsafe",
           c.gate_reason);
    if (c.major == 7)
        tap.ok(c.background_snapshot_gate_safe, "snapshot gate: QEMU 7.2's monitor answers while the stream is held",
               c.gate_reason);
    // QEMU 10 comes from bookworm-backports, unpacked privately by the script the
    // qemu10 e2e tests use (exit 77: unreachable, the check is skipped).
    const char *srcdir = std::getenv("VIRTSNAP_TEST_SRCDIR");
    process::SpawnOptions fetch;
    fetch.argv = {std::string(srcdir ? srcdir : "tests") + "/qemu10/fetch-qemu10.sh"};
    auto fetched = process::run_capture(fetch);
    std::string qemu10 = fetched && fetched->status.success() ? fetched->out : std::string();
    while (!qemu10.empty() && qemu10.back() == '\n') qemu10.pop_back();
    if (!fetched)
        tap.ok(false, "fetch QEMU 10", fetched.error().message());
    else if (!fetched->status.success() && fetched->status.code != 77)
        tap.ok(false, "fetch QEMU 10", fetched->err);
    if (!qemu10.empty() && ::access(qemu10.c_str(), X_OK) == 0) {
        ProbeOptions features;
        features.probe_kvm = false;
        auto c10 = probe_qemu(qemu10, features);
        tap.ok(c10 && c10->major >= 10 && !c10->background_snapshot_gate_safe &&
                   c10->gate_reason.find("does not answer") != std::string::npos,
               "snapshot gate: QEMU 10's monitor blocks while the stream is held",
               c10 ? c10->gate_reason : c10.error().message());
    } else {
        tap.skip("snapshot gate on QEMU 10", "QEMU 10 cannot be fetched from bookworm-backports");
    }
    // The KVM verdict is only as good as its test guest: under TCG it must
    // reach long mode and exit, or every host would look broken.
    std::string tcg = run_probe_guest(binary, "tcg");
    tap.ok(tcg.empty(), "KVM test guest reaches long mode under TCG", tcg);
    tap.eq(cache.probes(), 1, "one probe");
    auto again = cache.get(binary);
    tap.ok(again && again->get() == caps->get() && cache.probes() == 1, "cached per binary and mtime");

    // The daemon's cache probes features only: KVM (seconds where guests
    // hang) is decided apart, and only for a KVM domain.
    auto daemon_caps = host_caps_cache().get(binary);
    tap.ok(daemon_caps && (*daemon_caps)->has_snapshot_jobs() && (*daemon_caps)->has_background_snapshot() &&
               !(*daemon_caps)->kvm_device_opens && (*daemon_caps)->kvm_reason.empty(),
           "daemon cache: features without a KVM probe", daemon_caps ? "" : daemon_caps.error().message());
    auto again2 = host_caps_cache().get(binary);
    tap.ok(again2 && daemon_caps && again2->get() == daemon_caps->get() && host_caps_cache().probes() == 1,
           "daemon cache: one probe per run");
    ::setenv("VIRTSNAP_KVM", "0", 1);
    KvmSupport off = host_kvm_support(binary);
    tap.ok(!off.usable && off.reason == "disabled by VIRTSNAP_KVM=0", "VIRTSNAP_KVM=0 declares KVM unusable",
           off.reason);
    tap.ok(!probe_host().kvm_support(binary).usable, "the host probe gives the same KVM verdict");
    ::unsetenv("VIRTSNAP_KVM");

    auto missing = probe_qemu("/nonexistent/qemu-system-x86_64");
    tap.ok(!missing && missing.error().code == VIR_ERR_SYSTEM_ERROR, "missing binary is an error");
    ProbeOptions quick;
    quick.probe_kvm = false;
    quick.timeout = std::chrono::milliseconds(3000);
    auto not_qemu = probe_qemu("/bin/false", quick);
    tap.ok(!not_qemu && not_qemu.error().detail.find("Failed to probe QEMU binary with QMP") == 0,
           "a binary that is not QEMU is an error", not_qemu ? "" : not_qemu.error().detail);
    return tap.finish();
}
