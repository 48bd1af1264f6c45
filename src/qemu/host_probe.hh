// host_probe.hh - facts about the host the command line depends on (does KVM
// run guests, which firmware files exist, what each QEMU binary can do),
// gathered once per daemon run so command-line generation itself stays
// deterministic and cheap.
#pragma once

#include "qemu/capabilities.hh"
#include "qemu/command_line.hh"

namespace virtsnap::qemu {

// The HostProbe every start path (start, restore, revert) hands to
// DomainProcess: real file checks, the KVM verdict of host_kvm_support() and
// the capabilities of host_caps_cache().
HostProbe probe_host();

// The daemon's capability cache: one probe per binary path and mtime for the
// whole run (KVM is probed separately, see below).
QemuCapsCache &host_caps_cache();

// Whether KVM runs guests with `binary`, decided once per binary per run:
//   VIRTSNAP_KVM=0   not usable, nothing probed
//   /dev/kvm must open, report API version 12 and create a VM
//   VIRTSNAP_KVM=1   usable once /dev/kvm passes (skips the test guest)
//   otherwise        capabilities.cc's test guest must run under KVM: on some
//                    hosts /dev/kvm opens and creates VMs but guests hang
//                    (the probe then costs up to 10 s, once)
KvmSupport host_kvm_support(const std::string &binary);

// The hugetlbfs mounts guest RAM may use, as libvirt's qemu.conf
// hugetlbfs_mount: `configured` (virtsnapd.conf's setting) when set, which
// must be a hugetlbfs (VIR_ERR_CONFIG_UNSUPPORTED otherwise), else every
// hugetlbfs in /proc/mounts. A mount's page size is its statfs block size;
// the one of /proc/meminfo's Hugepagesize is the default.
[[nodiscard]] Result<std::vector<HugetlbfsMount>> find_hugetlbfs_mounts(const std::string &configured);

// The kernel's huge page pools, smallest size first: size in KiB and pages
// reserved (/sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages).
struct HugePagePool {
    unsigned long long size_kib = 0, count = 0;
};
std::vector<HugePagePool> huge_page_pools();

}  // namespace virtsnap::qemu
