// fuzz_qmp_reply.cc - libFuzzer target for what QEMU and the guest agent send
// us: line framing, QMP message classification and every reply/event parser.

#include "qemu/monitor.hh"
#include "qemu/monitor_json.hh"
#include "qemu/qmp_channel.hh"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace virtsnap::qemu;

namespace {

void parse_everything(std::string_view line) {
    auto msg = qmpjson::parse_message(line);
    if (!msg) return;
    const QValue &r = msg->ret;
    (void)qmpjson::parse_status(r);
    (void)qmpjson::parse_block_info(r);
    (void)qmpjson::parse_named_block_nodes(r);
    (void)qmpjson::parse_jobs(r);
    (void)qmpjson::parse_migration_info(r);
    (void)qmpjson::parse_migration_capabilities(r);
    (void)qmpjson::parse_add_fd(r);
    (void)qmpjson::parse_machines(r);
    (void)qmpjson::parse_kvm(r);
    (void)qmpjson::parse_commands(r);
    (void)qmpjson::parse_schema_names(r, "command");
    (void)qmpjson::command_error("x", *msg);
    (void)qmpjson::agent_command_error("x", *msg);
    (void)parse_job_status_change(msg->event);
    (void)parse_block_job_event(msg->event);
    (void)parse_migration_event(msg->event);
    (void)parse_shutdown_event(msg->event);
    (void)parse_device_deleted_event(msg->event);
    // Whatever was parsed must serialize again.
    (void)qvalue_to_json(r);
    (void)qvalue_to_json(msg->event.data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char *>(data), size);
    // The whole input as one message, then as a stream of lines.
    parse_everything(bytes);
    LineBuffer lines(1 << 20);
    lines.feed(bytes, [](std::string_view line) {
        parse_everything(line);
        return true;
    });
    return 0;
}
