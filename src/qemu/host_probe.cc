// host_probe.cc - KVM and firmware-file checks for the command line.
#define LOG_MODULE "qemu.host_probe"

#include "qemu/host_probe.hh"

#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

namespace virtsnap::qemu {

HostProbe probe_host() {
    HostProbe p;
    p.file_exists = [](const std::string &path) { return file::exists(path); };
    const char *env = std::getenv("VIRTSNAP_KVM");
    if (env && std::strcmp(env, "0") == 0) {
        p.kvm_reason = "disabled by VIRTSNAP_KVM=0";
        return p;
    }
    UniqueFd kvm(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (!kvm.valid()) {
        p.kvm_reason = std::string("cannot open /dev/kvm: ") + std::strerror(errno);
        return p;
    }
    int version = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        p.kvm_reason = "/dev/kvm reports API version " + std::to_string(version);
        return p;
    }
    UniqueFd vm(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
    if (!vm.valid()) {
        p.kvm_reason = std::string("cannot create a KVM VM: ") + std::strerror(errno);
        return p;
    }
    p.kvm_usable = true;
    VS_DEBUG("KVM usable");
    return p;
}

}  // namespace virtsnap::qemu
