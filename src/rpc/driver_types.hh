// driver_types.hh - the plain C++ values the rpc layer and a Driver exchange.
//
// They mirror libvirt's public objects (virDomainPtr is name + UUID + id, a
// snapshot is a name within a domain) without any wire or QEMU detail, so the
// daemon implements rpc::Driver with ordinary types.
#pragma once

#include "util/uuid.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace virtsnap::rpc {

// Who is calling: connections are numbered by the server; read_only is set for
// the read-only socket and for clients that opened with VIR_CONNECT_RO.
struct Client {
    uint64_t connection_id = 0;
    bool read_only = false;
};

// A domain as a client names it (virDomainPtr). id is -1 when inactive.
struct DomainRef {
    std::string name;
    Uuid uuid;
    int32_t id = -1;
    bool operator==(const DomainRef &) const = default;
};

struct SnapshotRef {
    std::string name;
    DomainRef dom;
    bool operator==(const SnapshotRef &) const = default;
};

struct CheckpointRef {
    std::string name;
    DomainRef dom;
    bool operator==(const CheckpointRef &) const = default;
};

// virTypedParameter: the variant index + 1 is libvirt's VIR_TYPED_PARAM_* type
// (INT 1, UINT 2, LLONG 3, ULLONG 4, DOUBLE 5, BOOLEAN 6, STRING 7).
using TypedValue = std::variant<int32_t, uint32_t, int64_t, uint64_t, double, bool, std::string>;
struct TypedParam {
    std::string field;
    TypedValue value;
    bool operator==(const TypedParam &) const = default;
};

// virNodeInfo (memory in KiB).
struct NodeInfo {
    std::string model;
    uint64_t memory_kib = 0;
    int32_t cpus = 0, mhz = 0, nodes = 1, sockets = 1, cores = 1, threads = 1;
};

// virDomainInfo (memory in KiB, cpu time in ns).
struct DomainInfo {
    uint8_t state = 0;  // virDomainState
    uint64_t max_mem_kib = 0;
    uint64_t memory_kib = 0;
    uint16_t nr_virt_cpu = 0;
    uint64_t cpu_time_ns = 0;
};

struct DomainState {
    int32_t state = 0;   // virDomainState
    int32_t reason = 0;  // virDomain<State>Reason
};

// virDomainBlockInfo.
struct BlockInfo {
    uint64_t capacity = 0, allocation = 0, physical = 0;
};

// virDomainJobInfo (the legacy fixed structure).
struct JobInfo {
    int32_t type = 0;  // virDomainJobType
    uint64_t time_elapsed = 0, time_remaining = 0;
    uint64_t data_total = 0, data_processed = 0, data_remaining = 0;
    uint64_t mem_total = 0, mem_processed = 0, mem_remaining = 0;
    uint64_t file_total = 0, file_processed = 0, file_remaining = 0;
};

// virDomainGetJobStats: job type plus typed parameters.
struct JobStats {
    int32_t type = 0;
    std::vector<TypedParam> params;
};

// virDomainGetBlockJobInfo; found=false is "no current block job".
struct BlockJobInfo {
    bool found = false;
    int32_t type = 0;
    uint64_t bandwidth = 0, cur = 0, end = 0;
};

struct SecurityModel {
    std::string model;  // empty: no security driver
    std::string doi;
};

struct SecurityLabel {
    std::string label;
    int32_t enforcing = 0;
};

}  // namespace virtsnap::rpc
