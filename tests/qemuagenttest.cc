// qemuagenttest.cc - the guest agent client against a mock qemu-ga on a real
// unix socket: delimited sync, ping, fsfreeze, guest-shutdown, error replies,
// stale replies, timeouts, EOF and libvirt's "not connected"/"not configured"
// errors.

#include "qemu/agent.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"

#include <atomic>
#include <mutex>

using namespace virtsnap;
using namespace virtsnap::qemu;
using virtsnap::test::MockQmpServer;
using virtsnap::test::Tap;

namespace {

using Millis = std::chrono::milliseconds;

// A qemu-ga lookalike; `behaviour` decides the answer to each non-sync command.
struct MockAgent {
    MockQmpServer server{MockQmpServer::Options{false, false}};
    std::mutex mu;
    std::vector<std::string> commands;
    std::atomic<int> syncs{0};
    std::function<std::vector<std::string>(const std::string &name, const QValue &cmd)> behaviour;
    bool stale_before_sync = false;
    std::atomic<bool> silent_sync{false};   // a hung agent: not even guest-sync-delimited is answered

    MockAgent() {
        server.set_handler([this](const QValue &cmd, std::vector<UniqueFd> &) -> std::vector<std::string> {
            const QValue *exec = cmd.get("execute");
            std::string name = exec && exec->str() ? *exec->str() : "";
            {
                std::lock_guard lock(mu);
                commands.push_back(qvalue_to_json(cmd));
            }
            if (name == "guest-sync-delimited") {
                ++syncs;
                if (silent_sync) return {"NOREPLY"};
                const QValue *id = cmd.get("arguments") ? cmd.get("arguments")->get("id") : nullptr;
                std::vector<std::string> out;
                if (stale_before_sync) {
                    // What a command that timed out earlier answers late.
                    out.push_back(R"({"return": {}})");
                    out.push_back("\xff" R"({"return": 12345})");
                    stale_before_sync = false;
                }
                out.push_back("\xff" R"({"return": )" + (id ? qvalue_to_json(*id) : "0") + "}");
                return out;
            }
            return behaviour(name, cmd);
        });
        server.start();
    }
};

Agent::Options fast() {
    Agent::Options o;
    o.timeout = Millis(3000);
    return o;
}

void test_commands(Tap &tap) {
    MockAgent mock;
    mock.behaviour = [](const std::string &name, const QValue &) -> std::vector<std::string> {
        if (name == "guest-ping") return {R"({"return": {}})"};
        if (name == "guest-fsfreeze-freeze") return {R"({"return": 2})"};
        if (name == "guest-fsfreeze-freeze-list") return {R"({"return": 1})"};
        if (name == "guest-fsfreeze-status") return {R"({"return": "frozen"})"};
        if (name == "guest-fsfreeze-thaw") return {R"({"return": 2})"};
        return {R"({"error": {"class": "CommandNotFound", "desc": "The command )" + name + R"( has not been found"}})"};
    };
    auto agent = Agent::connect(mock.server.socket_path(), fast());
    if (!tap.ok(agent.has_value(), "agent: connect")) return;
    Agent &a = **agent;
    tap.ok(a.connected(), "agent: connected");
    auto st = a.ping();
    tap.ok(st.has_value(), "agent: guest-ping", st ? "" : st.error().message());
    auto frozen = a.fsfreeze_freeze();
    tap.ok(frozen && *frozen == 2, "agent: fsfreeze-freeze returns the count");
    auto some = a.fsfreeze_freeze({"/", "/var"});
    tap.ok(some && *some == 1, "agent: fsfreeze-freeze-list");
    auto status = a.fsfreeze_status();
    tap.ok(status && *status == "frozen", "agent: fsfreeze-status");
    auto thawed = a.fsfreeze_thaw();
    tap.ok(thawed && *thawed == 2, "agent: fsfreeze-thaw");
    auto unknown = a.execute("guest-get-osinfo");
    tap.ok(!unknown && unknown.error().code == VIR_ERR_INTERNAL_ERROR, "agent: error reply");
    if (!unknown)
        tap.eq_text(unknown.error().message(),
                    "internal error: unable to execute QEMU agent command 'guest-get-osinfo': "
                    "The command guest-get-osinfo has not been found",
                    "agent: error text as libvirt");
    tap.eq(mock.syncs.load(), 6, "agent: every command preceded by guest-sync-delimited");
    std::lock_guard lock(mock.mu);
    bool list_ok = false;
    for (const auto &c : mock.commands)
        if (c.find("guest-fsfreeze-freeze-list") != std::string::npos)
            list_ok = c == R"({"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/","/var"]}})";
    tap.ok(list_ok, "agent: mount points sent");
    tap.ok(mock.commands.size() > 0 && mock.commands[0].find(R"("execute":"guest-sync-delimited","arguments":{"id":)") == 1,
           "agent: sync command layout", mock.commands.empty() ? "" : mock.commands[0]);
}

void test_error_without_desc(Tap &tap) {
    MockAgent mock;
    mock.behaviour = [](const std::string &, const QValue &) -> std::vector<std::string> {
        return {R"({"error": {"class": "CommandDisabled"}})"};
    };
    auto agent = Agent::connect(mock.server.socket_path(), fast());
    if (!tap.ok(agent.has_value(), "agent: connect (disabled)")) return;
    auto r = (*agent)->fsfreeze_freeze();
    tap.ok(!r && r.error().detail == "unable to execute QEMU agent command 'guest-fsfreeze-freeze': "
                                     "The command has been disabled for this instance",
           "agent: class turned into words", r ? "" : r.error().detail);
}

void test_timeout_and_stale(Tap &tap) {
    MockAgent mock;
    std::atomic<int> pings{0};
    mock.behaviour = [&](const std::string &name, const QValue &) -> std::vector<std::string> {
        if (name == "guest-ping" && pings++ == 0) return {"NOREPLY"};
        return {R"({"return": {}})"};
    };
    auto agent = Agent::connect(mock.server.socket_path(), fast());
    if (!tap.ok(agent.has_value(), "agent: connect (timeout)")) return;
    auto r = (*agent)->execute("guest-ping", {}, Millis(200));
    tap.ok(!r && r.error().code == VIR_ERR_AGENT_UNRESPONSIVE, "agent: timeout is AGENT_UNRESPONSIVE");
    if (!r)
        tap.eq_text(r.error().message(), "Guest agent is not responding: Guest agent not available for now",
                    "agent: timeout text as libvirt");
    // The late reply and a reply to an old sync come before ours: both skipped.
    mock.stale_before_sync = true;
    auto st = (*agent)->ping();
    tap.ok(st.has_value(), "agent: stale replies skipped by sync", st ? "" : st.error().message());
}

void test_eof(Tap &tap) {
    MockAgent mock;
    mock.behaviour = [](const std::string &, const QValue &) -> std::vector<std::string> { return {"EOF"}; };
    auto agent = Agent::connect(mock.server.socket_path(), fast());
    if (!tap.ok(agent.has_value(), "agent: connect (eof)")) return;
    auto r = (*agent)->fsfreeze_thaw();
    tap.ok(!r && r.error().code == VIR_ERR_AGENT_UNRESPONSIVE &&
               r.error().detail == "Guest agent disappeared while executing command",
           "agent: EOF mid-command", r ? "" : r.error().message());
    tap.ok(!(*agent)->connected(), "agent: not connected after EOF");
    auto later = (*agent)->ping();
    tap.ok(!later && later.error().message() == "Guest agent is not responding: QEMU guest agent is not connected",
           "agent: later commands: not connected", later ? "" : later.error().message());
}

// guest-shutdown as qemu-ga answers it: not at all (the guest goes down) or
// by closing the channel; only errors before it was sent, and error replies,
// are failures.
void test_shutdown(Tap &tap) {
    MockAgent mock;
    std::atomic<int> shutdowns{0};
    mock.behaviour = [&](const std::string &name, const QValue &cmd) -> std::vector<std::string> {
        if (name != "guest-shutdown") return {R"({"return": {}})"};
        int n = shutdowns++;
        const QValue *mode = cmd.get("arguments") ? cmd.get("arguments")->get("mode") : nullptr;
        if (!mode || !mode->str()) return {R"({"error": {"class": "GenericError", "desc": "no mode"}})"};
        if (n == 0) return {"NOREPLY"};
        if (n == 1) return {R"({"error": {"class": "GenericError", "desc": "Invalid parameter 'mode'"}})"};
        return {"EOF"};
    };
    auto agent = Agent::connect(mock.server.socket_path(), fast());
    if (!tap.ok(agent.has_value(), "agent: connect (shutdown)")) return;
    Agent &a = **agent;
    auto st = a.shutdown("powerdown", Millis(300));
    tap.ok(st.has_value(), "agent: guest-shutdown without a reply was delivered", st ? "" : st.error().message());
    st = a.shutdown("sideways", Millis(3000));
    tap.ok(!st && st.error().code == VIR_ERR_INTERNAL_ERROR &&
               st.error().detail == "unable to execute QEMU agent command 'guest-shutdown': Invalid parameter 'mode'",
           "agent: guest-shutdown error reply", st ? "" : st.error().message());
    st = a.shutdown("reboot", Millis(3000));
    tap.ok(st.has_value(), "agent: guest-shutdown answered by EOF was delivered", st ? "" : st.error().message());
    {
        std::lock_guard lock(mock.mu);
        std::string sent;
        for (const auto &c : mock.commands)
            if (c.find("guest-shutdown") != std::string::npos) sent += c + "\n";
        tap.eq_text(sent,
                    R"({"execute":"guest-shutdown","arguments":{"mode":"powerdown"}})" "\n"
                    R"({"execute":"guest-shutdown","arguments":{"mode":"sideways"}})" "\n"
                    R"({"execute":"guest-shutdown","arguments":{"mode":"reboot"}})" "\n",
                    "agent: guest-shutdown commands as sent");
    }
    st = a.shutdown("powerdown");
    tap.ok(!st && st.error().code == VIR_ERR_AGENT_UNRESPONSIVE &&
               st.error().detail == "QEMU guest agent is not connected",
           "agent: guest-shutdown after EOF: not connected", st ? "" : st.error().message());

    // An agent that does not answer the sync never got the command: an error.
    MockAgent hung;
    hung.silent_sync = true;
    hung.behaviour = [](const std::string &, const QValue &) -> std::vector<std::string> { return {}; };
    auto agent2 = Agent::connect(hung.server.socket_path(), fast());
    if (!tap.ok(agent2.has_value(), "agent: connect (hung)")) return;
    auto h = (*agent2)->shutdown("powerdown", Millis(200));
    tap.ok(!h && h.error().code == VIR_ERR_AGENT_UNRESPONSIVE &&
               h.error().detail == "Guest agent not available for now",
           "agent: guest-shutdown to a hung agent fails", h ? "" : h.error().message());
    std::lock_guard lock(hung.mu);
    bool never_sent = true;
    for (const auto &c : hung.commands) never_sent &= c.find("guest-shutdown") == std::string::npos;
    tap.ok(never_sent, "agent: guest-shutdown not sent without a sync");
}

void test_not_connected(Tap &tap) {
    auto agent = Agent::connect(test::temp_dir("noagent") + "/missing.sock", fast());
    tap.ok(!agent && agent.error().code == VIR_ERR_AGENT_UNRESPONSIVE && agent.error().domain == VIR_FROM_QEMU,
           "agent: missing socket is AGENT_UNRESPONSIVE");
    if (!agent)
        tap.eq_text(agent.error().message(), "Guest agent is not responding: QEMU guest agent is not connected",
                    "agent: not connected text");
    Error e = Agent::not_configured_error();
    tap.ok(e.code == VIR_ERR_ARGUMENT_UNSUPPORTED, "agent: not configured code");
    tap.eq_text(e.message(), "argument unsupported: QEMU guest agent is not configured", "agent: not configured text");
}

}  // namespace

int main() {
    Tap tap;
    test_commands(tap);
    test_error_without_desc(tap);
    test_timeout_and_stale(tap);
    test_eof(tap);
    test_shutdown(tap);
    test_not_connected(tap);
    return tap.finish();
}
