// error.hh - the one error type of virtsnap.
//
// An Error carries libvirt's virErrorNumber and virErrorDomain values so that it
// crosses the wire unchanged, plus the detail text given at the failing call.
// The full message a client sees ("invalid argument: <detail>") is derived from
// the code exactly as libvirt's virErrorMsg does; only src/rpc puts it on the wire.
#pragma once

#include <libvirt/virterror.h>

#include <string>
#include <string_view>

namespace virtsnap {

struct Error {
    virErrorNumber code = VIR_ERR_INTERNAL_ERROR;
    virErrorDomain domain = VIR_FROM_NONE;
    std::string detail;   // the text after libvirt's generic prefix
    int sys_errno = 0;    // errno for VIR_ERR_SYSTEM_ERROR, else 0

    // The message as libvirt formats it: generic text of the code, then the detail.
    std::string message() const;
};

// The generic text libvirt prints for a code, with its "%s" where the detail goes.
std::string_view generic_error_text(virErrorNumber code, bool has_detail);

// Builders used at the failing call, as libvirt's virReportError.
Error make_error(virErrorNumber code, virErrorDomain domain, std::string detail);
// A system error: the detail gets ": <strerror(errnum)>" appended, as virReportSystemError.
Error make_system_error(virErrorDomain domain, int errnum, std::string detail);

}  // namespace virtsnap
