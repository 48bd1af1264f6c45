// dispatch.hh - the table of REMOTE procedures that are answered by the Driver:
// for each, the libvirt API it stands for, whether it changes state (refused on
// read-only connections, as libvirt's virCheckReadOnlyGoto), its priority,
// and a handler that decodes the arguments, calls the driver and encodes the
// return value.
//
// Procedures that act on the connection itself (auth, open/close, features,
// event registration, keepalive) are not here: rpc::Session answers them.
#pragma once

#include "rpc/driver.hh"

#include "util/result.hh"

#include <cstdint>
#include <span>
#include <vector>

namespace virtsnap::rpc {

using Bytes = std::vector<uint8_t>;

enum class Access {
    Read,   // allowed on read-only connections
    Write,  // refused there with VIR_ERR_OPERATION_DENIED
};

// libvirt's `@priority` of the procedure in remote_protocol.x. High ones
// (lookups, state queries, destroy, define) may run on the priority workers.
enum class Priority { Low, High };

struct CallContext {
    Driver &driver;
    Client client;
};

// Decodes the payload, calls the driver, returns the encoded reply body.
using Handler = Result<Bytes> (*)(CallContext &ctx, std::span<const uint8_t> payload);

struct ProcedureInfo {
    int32_t proc;
    const char *name;  // the kProc constant, for logs
    const char *api;   // the public API it implements, for error messages
    Access access;
    Priority priority;
    Handler handler;
};

// The entry for `proc`, or nullptr when the driver does not serve it.
const ProcedureInfo *find_procedure(int32_t proc);
// Every entry, sorted by procedure number.
std::span<const ProcedureInfo> procedures();

// libvirt's refusal of a state-changing API on a read-only connection.
Error read_only_error(const char *api);

}  // namespace virtsnap::rpc
