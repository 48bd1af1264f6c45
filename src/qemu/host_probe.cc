// host_probe.cc - KVM, firmware-file and capability facts for the command
// line, cached for the daemon's run.
#define LOG_MODULE "qemu.host_probe"

#include "qemu/host_probe.hh"

#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include <dirent.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

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

// /proc/mounts writes space, tab, newline and backslash in paths as \ooo.
std::string unescape_mount_path(std::string_view field) {
    std::string out;
    for (size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            std::string oct(field.substr(i + 1, 3));
            if (oct.find_first_not_of("01234567") == std::string::npos) {
                out += char(std::stoi(oct, nullptr, 8));
                i += 3;
                continue;
            }
        }
        out += field[i];
    }
    return out;
}

unsigned long long default_huge_page_kib() {
    auto text = file::read("/proc/meminfo", 1 << 20, VIR_FROM_QEMU);
    if (!text) return 0;
    size_t at = text->find("Hugepagesize:");
    if (at == std::string::npos) return 0;
    return std::strtoull(text->c_str() + at + std::strlen("Hugepagesize:"), nullptr, 10);
}

// The page size of a hugetlbfs mount in KiB, or nullopt when `path` is not one.
std::optional<unsigned long long> hugetlbfs_page_kib(const std::string &path) {
    struct statfs fs;
    if (::statfs(path.c_str(), &fs) != 0 || fs.f_type != HUGETLBFS_MAGIC) return std::nullopt;
    return (unsigned long long)(fs.f_bsize) / 1024;
}

}  // namespace

Result<std::vector<HugetlbfsMount>> find_hugetlbfs_mounts(const std::string &configured) {
    unsigned long long default_kib = default_huge_page_kib();
    std::vector<HugetlbfsMount> mounts;
    auto add = [&](const std::string &path, unsigned long long kib) {
        for (const auto &m : mounts)
            if (m.path == path) return;
        mounts.push_back({path, kib, kib == default_kib});
    };
    if (!configured.empty()) {
        auto kib = hugetlbfs_page_kib(configured);
        if (!kib)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_QEMU,
                        "hugetlbfs_mount '" + configured + "' is not a mounted hugetlbfs");
        add(configured, *kib);
        return mounts;
    }
    auto text = file::read("/proc/mounts", 16 << 20, VIR_FROM_QEMU);
    if (!text) return mounts;   // no /proc: no huge pages either
    size_t pos = 0;
    while (pos < text->size()) {
        size_t nl = text->find('\n', pos);
        std::string_view line(text->data() + pos, (nl == std::string::npos ? text->size() : nl) - pos);
        pos = nl == std::string::npos ? text->size() : nl + 1;
        size_t a = line.find(' ');
        size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
        size_t c = b == std::string_view::npos ? b : line.find(' ', b + 1);
        if (c == std::string_view::npos || line.substr(b + 1, c - b - 1) != "hugetlbfs") continue;
        std::string path = unescape_mount_path(line.substr(a + 1, b - a - 1));
        if (auto kib = hugetlbfs_page_kib(path)) add(path, *kib);
    }
    return mounts;
}

std::vector<HugePagePool> huge_page_pools() {
    std::vector<HugePagePool> pools;
    const std::string root = "/sys/kernel/mm/hugepages";
    DIR *d = ::opendir(root.c_str());
    if (!d) return pools;
    while (struct dirent *e = ::readdir(d)) {
        unsigned long long kib = 0;
        if (std::sscanf(e->d_name, "hugepages-%llukB", &kib) != 1 || kib == 0) continue;
        auto text = file::read(root + "/" + e->d_name + "/nr_hugepages", 64, VIR_FROM_QEMU);
        pools.push_back({kib, text ? std::strtoull(text->c_str(), nullptr, 10) : 0});
    }
    ::closedir(d);
    std::sort(pools.begin(), pools.end(), [](const auto &a, const auto &b) { return a.size_kib < b.size_kib; });
    return pools;
}

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
