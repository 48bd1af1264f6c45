// host_probe.cc - KVM, firmware-file and capability facts for the command
// line, cached for the daemon's run.
#define LOG_MODULE "qemu.host_probe"

#include "qemu/host_probe.hh"

#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

namespace virtsnap::qemu {

namespace {

// The cheap part: what any host that can run KVM guests passes.
std::string kvm_device_problem() {
    UniqueFd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (!kvm.valid()) return std::string("cannot open /dev/kvm: ") + std::strerror(errno);
    int version = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) return "/dev/kvm reports API version " + std::to_string(version);
    UniqueFd vm(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (!vm.valid()) return std::string("cannot create a KVM VM: ") + std::strerror(errno);
    return {};
}

KvmSupport decide_kvm(const std::string &binary) {
    const char *env = std::getenv("VIRTSNAP_KVM");
    std::string override_ = env ? env : "";
    if (override_ == "0") return {false, "disabled by VIRTSNAP_KVM=0"};
    if (std::string problem = kvm_device_problem(); !problem.empty()) return {false, problem};
    if (override_ == "1") return {true, ""};
    QemuCaps caps;
    caps.binary = binary;
    probe_kvm(binary, ProbeOptions{}, caps);
    return {caps.kvm_runs_guest_code, caps.kvm_reason};
}

}  // namespace

QemuCapsCache &host_caps_cache() {
    // KVM facts cost seconds where guests hang: host_kvm_support() finds them
    // only for a KVM domain, not for every binary that is probed.
    static QemuCapsCache cache([] {
        ProbeOptions o;
        o.probe_kvm = false;
        return o;
    }());
    return cache;
}

KvmSupport host_kvm_support(const std::string &binary) {
    static std::mutex mu;
    static std::map<std::string, KvmSupport> verdicts;
    // Held while probing: a second caller for the same answer waits for it.
    std::lock_guard lock(mu);
    auto it = verdicts.find(binary);
    if (it != verdicts.end()) return it->second;
    KvmSupport v = decide_kvm(binary);
    if (v.usable) VS_INFO("KVM runs guests with %s", binary.c_str());
    else VS_INFO("KVM is not usable with %s: %s", binary.c_str(), v.reason.c_str());
    return verdicts[binary] = v;
}

HostProbe probe_host() {
    HostProbe p;
    p.file_exists = [](const std::string &path) { return file::exists(path); };
    p.kvm = [](const std::string &binary) { return host_kvm_support(binary); };
    p.caps = [](const std::string &binary) { return host_caps_cache().get(binary); };
    return p;
}

}  // namespace virtsnap::qemu
