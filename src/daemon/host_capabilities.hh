// host_capabilities.hh - the <capabilities> document virConnectGetCapabilities
// returns: an x86_64 host offering `qemu` (TCG) guests and, where KVM really
// works, `kvm` guests, with the machine types the QEMU binary reports.
#pragma once

#include "qemu/host_probe.hh"

#include <string>
#include <vector>

namespace virtsnap::daemon {

struct HostCapabilitiesInput {
    std::string host_uuid;
    std::string emulator;                      // /usr/bin/qemu-system-x86_64
    std::vector<std::string> machines;         // pc-i440fx-7.2, pc-q35-7.2, ...
    std::vector<std::string> machine_aliases;  // alias per entry of `machines` ("" = none)
    std::vector<unsigned> machine_max_cpus;    // per entry of `machines`
    // qemu::host_kvm_support(): KVM that runs guests, not merely a /dev/kvm
    // that opens (on some hosts it opens and guests hang).
    bool kvm_usable = false;
    unsigned cpus = 1;
    unsigned long long memory_kib = 0;
    // Huge page pools (qemu::huge_page_pools()): size in KiB and pages
    // reserved. The system's 4 KiB pages come first, as in libvirt's output,
    // counting the memory the pools do not hold.
    std::vector<qemu::HugePagePool> huge_pages;
};

std::string format_host_capabilities(const HostCapabilitiesInput &in);

}  // namespace virtsnap::daemon
