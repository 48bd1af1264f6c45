// host_probe.hh - facts about the host the command line depends on (is KVM
// usable, which firmware files exist), gathered once so command-line
// generation itself stays deterministic.
#pragma once

#include "qemu/command_line.hh"

namespace virtsnap::qemu {

// Probes /dev/kvm: it must open, report API version 12 and create a VM.
// VIRTSNAP_KVM=0 in the environment declares KVM unusable without probing:
// on some hosts KVM opens and creates VMs but guests hang (see
// docs/machine facts), which no cheap probe can detect.
HostProbe probe_host();

}  // namespace virtsnap::qemu
