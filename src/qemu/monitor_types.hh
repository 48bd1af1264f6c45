// monitor_types.hh - typed arguments and replies of the QMP commands and events
// virtsnap uses, so that callers of qemu::Monitor never see JSON.
//
// Field names follow the QAPI schema (qapi/*.json in QEMU) with '-' turned into
// '_'. Optional QAPI members are std::optional here; absent members of a reply
// keep their defaults. monitor_json.cc converts between these and QMP.
#pragma once

#include "qemu/qvalue.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace virtsnap::qemu {

// The greeting QEMU sends on every new QMP connection.
struct QmpGreeting {
    int major = 0, minor = 0, micro = 0;
    std::string package;
    std::vector<std::string> capabilities;  // e.g. "oob"
};

// A QMP event as received, delivered to subscribers in arrival order.
struct QmpEvent {
    std::string name;
    QValue data;  // the "data" member, null when absent
    int64_t seconds = 0;
    int64_t microseconds = 0;
};

// query-status
struct StatusInfo {
    bool running = false;
    std::string status;  // RunState: "running", "paused", "postmigrate", ...
};

// query-block, one entry per block backend (disk device).
struct BlockInserted {
    std::string node_name;
    std::string file;
    std::string drv;
    bool ro = false;
    std::optional<std::string> backing_file;
};
struct BlockInfo {
    std::string device;  // empty for -blockdev/-device configurations
    std::string qdev;
    bool removable = false;
    bool locked = false;
    std::optional<BlockInserted> inserted;
};

// query-named-block-nodes (flat=true): one entry per node of the block graph.
struct DirtyBitmapInfo {
    std::string name;
    uint64_t granularity = 0;
    int64_t count = 0;
    bool recording = false;
    bool busy = false;
    bool persistent = false;
    bool inconsistent = false;
};
struct NamedBlockNode {
    std::string node_name;
    std::string drv;
    std::string file;
    bool ro = false;
    std::optional<std::string> backing_file;
    // from the "image" member (ImageInfo)
    int64_t virtual_size = 0;
    std::optional<int64_t> actual_size;
    std::string format;
    std::optional<std::string> backing_filename;
    std::vector<DirtyBitmapInfo> dirty_bitmaps;
};

// query-jobs
struct JobInfo {
    std::string id;
    std::string type;    // JobType: "commit", "stream", "mirror", "backup", "create", "snapshot-save", ...
    std::string status;  // JobStatus: "created", "running", "paused", "ready", "standby",
                         // "waiting", "pending", "aborting", "concluded", "null"
    int64_t current_progress = 0;
    int64_t total_progress = 0;
    std::optional<std::string> error;
};

// query-migrate
struct MigrationRam {
    int64_t transferred = 0;
    int64_t remaining = 0;
    int64_t total = 0;
};
struct MigrationInfo {
    std::string status;  // MigrationStatus: "none", "setup", "active", "completed", "failed", ...
    std::optional<MigrationRam> ram;
    std::optional<int64_t> setup_time;
    std::optional<int64_t> downtime;
    std::optional<int64_t> expected_downtime;
    std::optional<int64_t> total_time;
    std::optional<std::string> error_desc;
};

// query-migrate-capabilities and migrate-set-capabilities
struct MigrationCapability {
    std::string capability;
    bool state = false;
};

// query-migrate-parameters: the members virtsnap changes and puts back.
struct MigrationParameters {
    std::optional<int64_t> max_bandwidth;     // bytes/s
    std::optional<int64_t> downtime_limit;    // ms
    std::optional<int64_t> multifd_channels;
    std::optional<bool> direct_io;            // QEMU 9.0 and later
};

// add-fd
struct AddFdInfo {
    int64_t fdset_id = 0;
    int64_t fd = 0;
};

// query-machines
struct MachineInfo {
    std::string name;
    std::optional<std::string> alias;
    bool is_default = false;
    int64_t cpu_max = 0;
    bool deprecated = false;
};

// query-kvm
struct KvmInfo {
    bool enabled = false;
    bool present = false;
};

// block-commit
struct BlockCommitArgs {
    std::string job_id;
    std::string device;  // node name of the active layer (the job's owner)
    std::optional<std::string> top_node;
    std::optional<std::string> base_node;
    std::optional<std::string> backing_file;
    std::optional<int64_t> speed;
    bool auto_finalize = true;
    bool auto_dismiss = false;
};

// block-stream
struct BlockStreamArgs {
    std::string job_id;
    std::string device;
    std::optional<std::string> base_node;
    std::optional<std::string> backing_file;
    std::optional<int64_t> speed;
    bool auto_finalize = true;
    bool auto_dismiss = false;
};

// blockdev-mirror
struct BlockdevMirrorArgs {
    std::string job_id;
    std::string device;
    std::string target;
    std::string sync = "full";  // "full", "top", "none"
    std::optional<int64_t> speed;
    std::optional<int64_t> granularity;
    std::optional<int64_t> buf_size;
    std::optional<std::string> copy_mode;  // "background", "write-blocking"
    bool auto_finalize = true;
    bool auto_dismiss = false;
};

// snapshot-save / snapshot-load / snapshot-delete (QEMU >= 6.0 jobs)
struct SnapshotJobArgs {
    std::string job_id;
    std::string tag;
    std::string vmstate;  // node holding the VM state; unused by snapshot-delete
    std::vector<std::string> devices;
};

// nbd-server-start on a unix socket or TCP address.
struct NbdServerAddress {
    std::string type = "unix";  // "unix" or "inet"
    std::string path;           // unix
    std::string host, port;     // inet
};

// The actions of a QMP transaction (qapi/transaction.json), built in order
// and sent as one all-or-nothing command.
class Transaction {
public:
    // blockdev-snapshot: `overlay` (already added, without backing) goes on top of `node`.
    Transaction &blockdev_snapshot(const std::string &node, const std::string &overlay);
    Transaction &blockdev_snapshot_internal_sync(const std::string &device, const std::string &name);
    Transaction &bitmap_add(const std::string &node, const std::string &name, bool persistent,
                            bool disabled = false, std::optional<uint64_t> granularity = {});
    Transaction &bitmap_remove(const std::string &node, const std::string &name);
    Transaction &bitmap_clear(const std::string &node, const std::string &name);
    Transaction &bitmap_enable(const std::string &node, const std::string &name);
    Transaction &bitmap_disable(const std::string &node, const std::string &name);
    // Sources are bitmap names on `node`.
    Transaction &bitmap_merge(const std::string &node, const std::string &target,
                              const std::vector<std::string> &sources);
    // Any other action, with its data as QAPI describes it.
    Transaction &action(const std::string &type, QDict data);

    bool empty() const { return actions_.empty(); }
    size_t size() const { return actions_.size(); }
    const QList &actions() const { return actions_; }

private:
    QList actions_;
};

// Typed views of the events virtsnap reacts to (parsed from QmpEvent::data).
struct JobStatusChangeEvent {
    std::string id;
    std::string status;
};
// BLOCK_JOB_COMPLETED, BLOCK_JOB_READY, BLOCK_JOB_ERROR, BLOCK_JOB_CANCELLED, BLOCK_JOB_PENDING
struct BlockJobEvent {
    std::string type;    // job type
    std::string device;  // job id
    int64_t len = 0;
    int64_t offset = 0;
    int64_t speed = 0;
    std::optional<std::string> error;   // BLOCK_JOB_COMPLETED on failure
    std::optional<std::string> action;  // BLOCK_JOB_ERROR
};
struct MigrationEvent {
    std::string status;
};
struct ShutdownEvent {
    bool guest = false;
    std::string reason;
};
struct DeviceDeletedEvent {
    std::optional<std::string> device;
    std::string path;
};

}  // namespace virtsnap::qemu
