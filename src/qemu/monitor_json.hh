// monitor_json.hh - the interface between the QMP/agent clients (monitor.cc,
// agent.cc) and monitor_json.cc, the one file that reads and writes JSON.
//
// Internal to src/qemu (and its tests and fuzzer): everything else uses the
// typed calls of qemu::Monitor and qemu::Agent.
#pragma once

#include "qemu/monitor_types.hh"
#include "qemu/qvalue.hh"
#include "util/result.hh"

#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::qemu::qmpjson {

// One message received from QEMU's monitor or the guest agent.
struct Message {
    enum class Kind { Greeting, Reply, Event };
    Kind kind = Kind::Reply;
    QmpGreeting greeting;        // Kind::Greeting
    std::optional<std::string> id;  // Kind::Reply: the id we sent, if echoed back
    bool ok = false;             // Kind::Reply: "return" (true) or "error" (false)
    QValue ret;                  // the "return" member
    std::string error_class;     // the "error" member's class and desc
    std::string error_desc;
    QmpEvent event;              // Kind::Event
};

// Parses one line of QMP. Malformed or unrecognised input is an error, never a crash.
[[nodiscard]] Result<Message> parse_message(std::string_view line);

// {"execute": name, "arguments": args, "id": id} without the line terminator;
// "arguments" is left out when args is empty, "id" when id is empty.
std::string build_command(std::string_view name, const QDict &args, std::string_view id);

// libvirt's report for an "error" reply (qemuMonitorJSONCheckErrorFull).
Error command_error(std::string_view command, const Message &reply);
// libvirt's report when "return" has the wrong type (qemuMonitorJSONGetReply).
Error unexpected_type_error(std::string_view command);

// Reply parsers: `ret` is the "return" member of `command`'s reply.
[[nodiscard]] Result<StatusInfo> parse_status(const QValue &ret);
[[nodiscard]] Result<std::vector<BlockInfo>> parse_block_info(const QValue &ret);
[[nodiscard]] Result<std::vector<NamedBlockNode>> parse_named_block_nodes(const QValue &ret);
[[nodiscard]] Result<std::vector<JobInfo>> parse_jobs(const QValue &ret);
[[nodiscard]] Result<MigrationInfo> parse_migration_info(const QValue &ret);
[[nodiscard]] Result<std::vector<MigrationCapability>> parse_migration_capabilities(const QValue &ret);
[[nodiscard]] Result<MigrationParameters> parse_migration_parameters(const QValue &ret);
[[nodiscard]] Result<AddFdInfo> parse_add_fd(const QValue &ret);
[[nodiscard]] Result<std::vector<MachineInfo>> parse_machines(const QValue &ret);
[[nodiscard]] Result<KvmInfo> parse_kvm(const QValue &ret);
[[nodiscard]] Result<std::vector<std::string>> parse_commands(const QValue &ret);
// query-qmp-schema: the names of entities with the given meta-type ("command", "event").
[[nodiscard]] Result<std::vector<std::string>> parse_schema_names(const QValue &ret, std::string_view meta_type);

// Argument builders (QAPI member order, so commands match golden conversations).
QDict args_block_commit(const BlockCommitArgs &a);
QDict args_block_stream(const BlockStreamArgs &a);
QDict args_blockdev_mirror(const BlockdevMirrorArgs &a);
QDict args_snapshot_job(const SnapshotJobArgs &a, bool with_vmstate);
QDict args_nbd_server_start(const NbdServerAddress &addr);

// Guest agent: one command line (with "\n"); the reply is parsed with parse_message.
std::string build_agent_command(std::string_view name, const QDict &args);
// libvirt's report for an agent "error" reply (qemuAgentCheckError).
Error agent_command_error(std::string_view command, const Message &reply);

}  // namespace virtsnap::qemu::qmpjson
