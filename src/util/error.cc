// error.cc - libvirt's generic error texts, so clients print the same words.

#include "util/error.hh"

#include <cstring>
#include <string>

namespace virtsnap {

namespace {

struct GenericText {
    const char *bare;         // used when there is no detail
    const char *with_detail;  // "%s" marks where the detail goes
};

// The texts a client shows for each code (libvirt's virErrorMsg). Codes that
// virtsnap never raises (Xen, HTTP, ...) fall back to the internal-error text.
GenericText text_for(virErrorNumber code) {
    switch (code) {
    case VIR_ERR_INTERNAL_ERROR: return {"internal error", "internal error: %s"};
    case VIR_ERR_NO_MEMORY: return {"out of memory", "out of memory: %s"};
    case VIR_ERR_NO_SUPPORT:
        return {"this function is not supported by the connection driver",
                "this function is not supported by the connection driver: %s"};
    case VIR_ERR_NO_CONNECT:
        return {"no connection driver available", "no connection driver available for %s"};
    case VIR_ERR_INVALID_CONN: return {"invalid connection pointer in", "invalid connection pointer in %s"};
    case VIR_ERR_INVALID_DOMAIN: return {"invalid domain pointer in", "invalid domain pointer in %s"};
    case VIR_ERR_INVALID_ARG: return {"invalid argument", "invalid argument: %s"};
    case VIR_ERR_OPERATION_FAILED: return {"operation failed", "operation failed: %s"};
    case VIR_ERR_OS_TYPE: return {"unknown OS type", "unknown OS type %s"};
    case VIR_ERR_NO_SOURCE:
        return {"missing source information for device", "missing source information for device %s"};
    case VIR_ERR_NO_TARGET:
        return {"missing target information for device", "missing target information for device %s"};
    case VIR_ERR_NO_NAME: return {"missing name information", "missing name information in %s"};
    case VIR_ERR_NO_OS:
        return {"missing operating system information", "missing operating system information for %s"};
    case VIR_ERR_XML_ERROR: return {"XML description is invalid or not well formed", "XML error: %s"};
    case VIR_ERR_DOM_EXIST: return {"this domain exists already", "domain %s exists already"};
    case VIR_ERR_OPERATION_DENIED:
        return {"operation forbidden for read only access", "operation forbidden: %s"};
    case VIR_ERR_OPEN_FAILED:
        return {"failed to open configuration file", "failed to open configuration file %s"};
    case VIR_ERR_READ_FAILED:
        return {"failed to read configuration file", "failed to read configuration file %s"};
    case VIR_ERR_PARSE_FAILED:
        return {"failed to parse configuration file", "failed to parse configuration file %s"};
    case VIR_ERR_CONF_SYNTAX:
        return {"configuration file syntax error", "configuration file syntax error: %s"};
    case VIR_ERR_WRITE_FAILED:
        return {"failed to write configuration file", "failed to write configuration file: %s"};
    case VIR_ERR_XML_DETAIL: return {"parser error", "%s"};
    case VIR_ERR_SYSTEM_ERROR: return {"system call error", "%s"};
    case VIR_ERR_RPC: return {"RPC error", "%s"};
    case VIR_ERR_NO_DOMAIN: return {"Domain not found", "Domain not found: %s"};
    case VIR_ERR_AUTH_FAILED: return {"authentication failed", "authentication failed: %s"};
    case VIR_ERR_NO_SECURITY_MODEL: return {"Security model not found", "Security model not found: %s"};
    case VIR_ERR_OPERATION_INVALID:
        return {"Requested operation is not valid", "Requested operation is not valid: %s"};
    case VIR_ERR_CONFIG_UNSUPPORTED: return {"unsupported configuration", "unsupported configuration: %s"};
    case VIR_ERR_OPERATION_TIMEOUT: return {"Timed out during operation", "Timed out during operation: %s"};
    case VIR_ERR_INVALID_DOMAIN_SNAPSHOT: return {"Invalid domain snapshot", "Invalid domain snapshot: %s"};
    case VIR_ERR_NO_DOMAIN_SNAPSHOT: return {"Domain snapshot not found", "Domain snapshot not found: %s"};
    case VIR_ERR_INVALID_STREAM: return {"invalid stream pointer", "invalid stream pointer in %s"};
    case VIR_ERR_ARGUMENT_UNSUPPORTED: return {"argument unsupported", "argument unsupported: %s"};
    case VIR_ERR_SNAPSHOT_REVERT_RISKY: return {"revert requires force", "revert requires force: %s"};
    case VIR_ERR_OPERATION_ABORTED: return {"operation aborted", "operation aborted: %s"};
    case VIR_ERR_NO_DOMAIN_METADATA: return {"metadata not found", "metadata not found: %s"};
    case VIR_ERR_OVERFLOW: return {"numerical overflow", "numerical overflow: %s"};
    case VIR_ERR_BLOCK_COPY_ACTIVE: return {"block copy still active", "block copy still active: %s"};
    case VIR_ERR_OPERATION_UNSUPPORTED: return {"Operation not supported", "Operation not supported: %s"};
    case VIR_ERR_AGENT_UNRESPONSIVE:
        return {"Guest agent is not responding", "Guest agent is not responding: %s"};
    case VIR_ERR_RESOURCE_BUSY: return {"resource busy", "resource busy: %s"};
    case VIR_ERR_ACCESS_DENIED: return {"access denied", "access denied: %s"};
    case VIR_ERR_CPU_INCOMPATIBLE:
        return {"the CPU is incompatible with host CPU", "the CPU is incompatible with host CPU: %s"};
    case VIR_ERR_XML_INVALID_SCHEMA:
        return {"XML document failed to validate against schema",
                "XML document failed to validate against schema: %s"};
    case VIR_ERR_AGENT_UNSYNCED:
        return {"guest agent replied with wrong id to guest-sync command",
                "guest agent replied with wrong id to guest-sync command: %s"};
    case VIR_ERR_DEVICE_MISSING: return {"device not found", "device not found: %s"};
    case VIR_ERR_INVALID_DOMAIN_CHECKPOINT:
        return {"Invalid domain checkpoint", "Invalid domain checkpoint: %s"};
    case VIR_ERR_NO_DOMAIN_CHECKPOINT: return {"Domain checkpoint not found", "Domain checkpoint not found: %s"};
    case VIR_ERR_NO_DOMAIN_BACKUP:
        return {"Domain backup job id not found", "Domain backup job id not found: %s"};
    case VIR_ERR_CHECKPOINT_INCONSISTENT: return {"checkpoint inconsistent", "checkpoint inconsistent: %s"};
    case VIR_ERR_MULTIPLE_DOMAINS:
        return {"multiple matching domains found", "multiple matching domains found: %s"};
    default: return {"internal error", "internal error: %s"};
    }
}

}  // namespace

std::string_view generic_error_text(virErrorNumber code, bool has_detail) {
    GenericText t = text_for(code);
    return has_detail ? t.with_detail : t.bare;
}

std::string Error::message() const {
    if (detail.empty()) return std::string(generic_error_text(code, false));
    std::string_view fmt = generic_error_text(code, true);
    std::string out;
    size_t at = fmt.find("%s");
    out.append(fmt.substr(0, at));
    out.append(detail);
    if (at != std::string_view::npos) out.append(fmt.substr(at + 2));
    return out;
}

Error make_error(virErrorNumber code, virErrorDomain domain, std::string detail) {
    return Error{code, domain, std::move(detail), 0};
}

Error make_system_error(virErrorDomain domain, int errnum, std::string detail) {
    detail += ": ";
    detail += std::strerror(errnum);
    return Error{VIR_ERR_SYSTEM_ERROR, domain, std::move(detail), errnum};
}

}  // namespace virtsnap
