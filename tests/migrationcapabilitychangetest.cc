// migrationcapabilitychangetest.cc - qemu::MigrationCapabilityChange against a
// mock QEMU that keeps its capabilities' states: only what changes is sent,
// restore puts back exactly that, a capability QEMU lacks is refused before
// anything is sent, and failures on either side leave QEMU as it was.

#include "qemu/migration_capability_change.hh"
#include "qemu/monitor.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"

#include <libvirt/libvirt.h>

#include <map>
#include <memory>
#include <optional>
#include <mutex>

using namespace virtsnap;
using namespace virtsnap::qemu;
using virtsnap::test::MockQmpServer;
using virtsnap::test::Tap;

namespace {

// A QEMU with three capabilities; migrate-set-capabilities fails while
// `refuse_set` is set (as QEMU does for a capability the host cannot take).
struct FakeQemu {
    MockQmpServer server;
    std::mutex mu;
    std::map<std::string, bool> state{{"events", false}, {"background-snapshot", false}, {"multifd", true}};
    std::vector<std::string> sets;  // the arguments of every migrate-set-capabilities, as JSON
    bool refuse_set = false;

    FakeQemu() {
        server.set_handler([this](const QValue &cmd, std::vector<UniqueFd> &) -> std::vector<std::string> {
            const QValue *exec = cmd.get("execute");
            std::string name = exec && exec->str() ? *exec->str() : "";
            std::lock_guard lock(mu);
            if (name == "query-migrate-capabilities") {
                std::string out = R"({"return": [)";
                bool first = true;
                for (const auto &[cap, on] : state) {
                    out += std::string(first ? "" : ", ") + R"({"capability": ")" + cap + R"(", "state": )" +
                           (on ? "true" : "false") + "}";
                    first = false;
                }
                return {out + "]}"};
            }
            if (name == "migrate-set-capabilities") {
                const QValue *args = cmd.get("arguments");
                const QValue *caps = args ? args->get("capabilities") : nullptr;
                sets.push_back(caps ? qvalue_to_json(*caps) : "?");
                if (refuse_set) return {R"({"error": {"class": "GenericError", "desc": "not on this host"}})"};
                if (caps && caps->list())
                    for (const auto &c : *caps->list()) {
                        const QValue *n = c.get("capability");
                        const QValue *s = c.get("state");
                        if (n && n->str() && s && s->boolean()) state[*n->str()] = *s->boolean();
                    }
                return {R"({"return": {}})"};
            }
            return {R"({"error": {"class": "CommandNotFound", "desc": "unexpected"}})"};
        });
        server.start();
    }
};

std::unique_ptr<Monitor> connect(Tap &tap, FakeQemu &q) {
    Monitor::Options o;
    o.vm_name = "vm1";
    o.timeout = std::chrono::milliseconds(5000);
    o.greeting_timeout = std::chrono::milliseconds(5000);
    auto m = Monitor::connect(q.server.socket_path(), o);
    tap.ok(m.has_value(), "connect", m ? "" : m.error().message());
    return m ? std::move(m).value() : nullptr;
}

// A monitor on `q` and the capabilities it reports now.
std::optional<MigrationCapabilityChange> begin(Tap &tap, FakeQemu &q, std::unique_ptr<Monitor> &mon) {
    mon = connect(tap, q);
    if (!mon) return std::nullopt;
    auto change = MigrationCapabilityChange::query(*mon);
    tap.ok(change.has_value(), "query", change ? "" : change.error().message());
    if (!change) return std::nullopt;
    return std::move(change).value();
}

}  // namespace

int main() {
    Tap tap;
    {   // the edges of one migration: query, want, apply, restore
        FakeQemu q;
        std::unique_ptr<Monitor> mon;
        auto change = begin(tap, q, mon);
        if (!change) return tap.finish();
        tap.eq(change->supported().size(), size_t(3), "query: the capabilities QEMU knows");
        tap.ok(change->require("background-snapshot").has_value(), "require: a capability QEMU has");
        change->want("events", true);
        change->want("multifd", false);
        change->want("multifd", true);      // a second wish replaces the first: no change left
        change->want("mapped-ram", false);  // unknown to this QEMU: nothing
        tap.ok(change->apply(*mon).has_value(), "apply");
        tap.eq(q.sets.size(), size_t(1), "apply: one migrate-set-capabilities");
        if (!q.sets.empty())
            tap.eq(q.sets[0],
                   std::string(R"([{"capability":"background-snapshot","state":true},)"
                               R"({"capability":"events","state":true}])"),
                   "apply: only what changes, in the order wished");
        tap.ok(q.state["background-snapshot"] && q.state["events"] && q.state["multifd"], "apply: QEMU's states");
        change->restore(*mon);
        tap.eq(q.sets.size(), size_t(2), "restore: one migrate-set-capabilities");
        tap.ok(!q.state["background-snapshot"] && !q.state["events"] && q.state["multifd"],
               "restore: QEMU as it was before apply");
        change->restore(*mon);
        tap.eq(q.sets.size(), size_t(2), "restore twice: the second sends nothing");
    }
    {   // nothing to change: nothing sent, on either side
        FakeQemu q;
        std::unique_ptr<Monitor> mon;
        auto change = begin(tap, q, mon);
        if (!change) return tap.finish();
        change->want("multifd", true);
        tap.ok(change->apply(*mon).has_value(), "no change: apply");
        change->restore(*mon);
        tap.eq(q.sets.size(), size_t(0), "no change: no migrate-set-capabilities at all");
    }
    {   // a capability QEMU lacks: refused with libvirt's code, nothing sent
        FakeQemu q;
        std::unique_ptr<Monitor> mon;
        auto change = begin(tap, q, mon);
        if (!change) return tap.finish();
        auto st = change->require("mapped-ram");
        tap.ok(!st && st.error().code == VIR_ERR_OPERATION_UNSUPPORTED &&
                   st.error().detail == "QEMU does not support migration capability 'mapped-ram'",
               "require: missing capability is VIR_ERR_OPERATION_UNSUPPORTED naming it",
               st ? "accepted" : st.error().message());
        tap.eq(q.sets.size(), size_t(0), "require: nothing sent");
    }
    {   // apply refused by QEMU: the error, and restore has nothing to put back
        FakeQemu q;
        std::unique_ptr<Monitor> mon;
        auto change = begin(tap, q, mon);
        if (!change) return tap.finish();
        change->want("background-snapshot", true);
        q.refuse_set = true;
        auto st = change->apply(*mon);
        tap.ok(!st && st.error().detail.find("not on this host") != std::string::npos,
               "apply refused: QEMU's error returned", st ? "accepted" : st.error().message());
        q.refuse_set = false;
        change->restore(*mon);
        tap.eq(q.sets.size(), size_t(1), "apply refused: restore sends nothing");
        tap.ok(!q.state["background-snapshot"], "apply refused: QEMU unchanged");
    }
    {   // restore refused by QEMU: logged, not thrown; the job's outcome stands
        FakeQemu q;
        std::unique_ptr<Monitor> mon;
        auto change = begin(tap, q, mon);
        if (!change) return tap.finish();
        change->want("events", true);
        tap.ok(change->apply(*mon).has_value(), "restore refused: apply");
        q.refuse_set = true;
        change->restore(*mon);
        tap.eq(q.sets.size(), size_t(2), "restore refused: tried once");
    }
    return tap.finish();
}
