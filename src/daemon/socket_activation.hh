// socket_activation.hh - the listening sockets systemd passes to a
// socket-activated virtsnapd (virtsnapd.socket, virtsnapd-ro.socket), found
// with sd_listen_fds(3) semantics and without linking libsystemd:
//
//   LISTEN_PID   must be this process, else the variables are for someone else
//   LISTEN_FDS   how many descriptors, starting at 3 (SD_LISTEN_FDS_START)
//   LISTEN_FDNAMES  colon-separated names (FileDescriptorName=, default: the
//                socket unit's name)
//
// A descriptor is the read-write socket when it is named "virtsnapd.socket"
// or bound to the read-write path, the read-only one when named
// "virtsnapd-ro.socket" or bound to the read-only path, as libvirt's
// virtqemud matches its own units. The variables are removed from the
// environment so QEMU and helpers never inherit them.
#pragma once

#include "util/raii.hh"
#include "util/result.hh"

#include <string>

namespace virtsnap::daemon {

struct ActivatedSockets {
    UniqueFd rw;  // invalid when not passed
    UniqueFd ro;
    bool activated() const { return rw.valid() || ro.valid(); }
};

// Takes the sockets systemd passed, if any. Fails when LISTEN_* is for this
// process but a descriptor is not a listening UNIX stream socket, or cannot be
// told apart.
[[nodiscard]] Result<ActivatedSockets> take_activated_sockets(const std::string &rw_path, const std::string &ro_path);

}  // namespace virtsnap::daemon
