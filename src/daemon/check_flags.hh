// check_flags.hh - libvirt's virCheckFlags: unknown flag bits are refused with
// VIR_ERR_INVALID_ARG "unsupported flags (0x%x) in function %s", naming the
// libvirt driver function so clients see the same text as from libvirtd.
#pragma once

#include "util/result.hh"

#include <cstdio>
#include <string>

namespace virtsnap::daemon {

[[nodiscard]] inline Status check_flags(uint32_t flags, uint32_t allowed, const char *function) {
    uint32_t unknown = flags & ~allowed;
    if (!unknown) return ok();
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", unknown);
    return fail(VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                std::string("unsupported flags (") + hex + ") in function " + function);
}

}  // namespace virtsnap::daemon
