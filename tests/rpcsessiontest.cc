// rpcsessiontest.cc - rpc::Session and the dispatch table without sockets:
// handshake order, read-only refusal, error replies (libvirtd's codes for
// unknown procedures and programs), call priorities, event registration and
// fan-out, with driver calls run synchronously.

#include "tap.hh"

#include "rpc/dispatch.hh"
#include "rpc/remote_protocol.hh"
#include "rpc/replies.hh"
#include "rpc/session.hh"

#include <libvirt/libvirt.h>

#include <set>

using namespace virtsnap;
using namespace virtsnap::rpc;

namespace {

class Driver1 : public Driver {
public:
    int suspends = 0;
    Result<DomainRef> domain_lookup_by_name(const Client &, const std::string &name) override {
        if (name == "a") return dom();
        return fail(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain with matching name '" + name + "'");
    }
    Status domain_suspend(const Client &, const DomainRef &) override {
        suspends++;
        return ok();
    }
    static DomainRef dom() { return DomainRef{"a", *Uuid::parse("00000000-0000-0000-0000-000000000001"), 3}; }
};

struct Io : SessionIo {
    std::vector<std::vector<uint8_t>> out;
    bool keepalive = false;
    void send(std::vector<uint8_t> p) override { out.push_back(std::move(p)); }
    std::vector<bool> priorities;  // of every submitted call, in order
    void submit(std::function<std::vector<uint8_t>()> job, bool high_priority) override {
        priorities.push_back(high_priority);
        send(job());
    }
    void start_keepalive() override { keepalive = true; }
};

struct Reply {
    Header h;
    std::vector<uint8_t> body;
};

template <typename T>
Reply call(Session &s, Io &io, int32_t proc, uint32_t serial, const T &args) {
    Header h{kRemoteProgram, 1, proc, MessageType::Call, serial, MessageStatus::Ok};
    xdr::Encoder e;
    begin_packet(e, h);
    (void)encode(e, args);
    (void)finish_packet(e);
    size_t before = io.out.size();
    s.handle_packet(std::span<const uint8_t>(e.bytes()).subspan(4));
    if (io.out.size() != before + 1) return Reply{Header{0, 0, -1, MessageType::Call, 0, MessageStatus::Ok}, {}};
    auto &p = io.out.back();
    return Reply{*parse_header(std::span<const uint8_t>(p).subspan(4)), {p.begin() + 28, p.end()}};
}

int32_t error_code(const Reply &r) {
    if (r.h.status != MessageStatus::Error) return 0;
    auto e = decode<RemoteError>(r.body);
    return e ? e->code : -1;
}

void test_table(test::Tap &t) {
    auto procs = procedures();
    bool sorted = true;
    std::set<int32_t> seen;
    std::string missing;
    for (size_t i = 0; i < procs.size(); i++) {
        if (i && procs[i - 1].proc >= procs[i].proc) sorted = false;
        seen.insert(procs[i].proc);
    }
    t.ok(sorted && seen.size() == procs.size(), "dispatch table sorted with unique numbers");
    for (int32_t p : {185, 186, 187, 188, 189, 190, 191, 192, 193, 244, 246, 247, 271, 272, 274, 275, 163, 298, 164,
                      442, 411, 412, 413, 414, 415, 416, 417, 421, 422, 345, 266, 240, 290, 237, 238, 239, 19, 151,
                      15, 183, 122, 121, 426})
        if (!find_procedure(p)) missing += std::to_string(p) + " ";
    t.eq(missing, std::string(), "every later-issue procedure has a dispatch entry");
    t.ok(find_procedure(kProcDomainSuspend)->access == Access::Write &&
             find_procedure(kProcDomainGetState)->access == Access::Read,
         "access classes: suspend writes, get-state reads");
    t.ok(find_procedure(5) == nullptr && find_procedure(100000) == nullptr, "unserved numbers are absent");
    // libvirt's `@priority: high` marks (remote_protocol.x); everything else is low.
    std::string wrong;
    for (int32_t p : {kProcDomainLookupByName, kProcDomainLookupByUuid, kProcDomainLookupById, kProcDomainGetState,
                      kProcDomainDestroy, kProcDomainDestroyFlags, kProcConnectListAllDomains, kProcDomainDefineXml,
                      kProcDomainDefineXmlFlags, kProcDomainUndefineFlags, kProcNodeGetInfo, kProcDomainIsActive,
                      kProcDomainSnapshotLookupByName, kProcDomainListAllSnapshots})
        if (find_procedure(p)->priority != Priority::High) wrong += std::to_string(p) + " ";
    for (int32_t p : {kProcDomainSave, kProcDomainSaveFlags, kProcDomainGetInfo, kProcDomainGetXmlDesc,
                      kProcDomainSnapshotCreateXml, kProcDomainSnapshotDelete, kProcDomainSuspend, kProcDomainCreate,
                      kProcConnectGetCapabilities, kProcDomainGetJobStats, kProcDomainSnapshotCurrent})
        if (find_procedure(p)->priority != Priority::Low) wrong += std::to_string(p) + " ";
    t.eq(wrong, std::string(), "priorities follow libvirt's @priority marks");

    Driver plain;
    CallContext ctx{plain, Client{}};
    auto r = find_procedure(kProcDomainListAllSnapshots)
                 ->handler(ctx, *encode_body(ListAllSnapshotsArgs{Driver1::dom(), 1, 0}));
    t.ok(!r && r.error().code == VIR_ERR_NO_SUPPORT &&
             r.error().message() == "this function is not supported by the connection driver: virDomainListAllSnapshots",
         "default driver method: libvirt's 'not supported' wording");
}

void test_session(test::Tap &t) {
    Driver1 d;
    Io io;
    Session s(d, io, 7, false);
    t.eq(error_code(call(s, io, kProcDomainLookupByName, 0, LookupByNameArgs{"a"})), int32_t(VIR_ERR_INTERNAL_ERROR),
         "driver call before CONNECT_OPEN refused");
    auto auth = call(s, io, kProcAuthList, 1, Void{});
    auto types = decode<AuthListRet>(auth.body);
    t.ok(types && types->types.size() == 1 && types->types[0] == kAuthNone, "AUTH_LIST: [none]");
    auto feat = call(s, io, kProcConnectSupportsFeature, 2, SupportsFeatureArgs{10});
    t.ok(decode<IntRet>(feat.body)->value == 1 && io.keepalive, "feature 10 before open starts keepalive");
    t.eq(decode<IntRet>(call(s, io, kProcConnectSupportsFeature, 3, SupportsFeatureArgs{6}).body)->value, 0,
         "migration feature: 0");
    t.eq(error_code(call(s, io, kProcConnectRegisterCloseCallback, 4, Void{})), int32_t(VIR_ERR_INTERNAL_ERROR),
         "close callback needs an open connection");
    auto open = call(s, io, kProcConnectOpen, 5, ConnectOpenArgs{std::string("qemu:///system"), 0});
    t.ok(open.h.status == MessageStatus::Ok && open.h.serial == 5 && s.is_open(), "CONNECT_OPEN");
    t.eq(error_code(call(s, io, kProcConnectOpen, 6, ConnectOpenArgs{})), int32_t(VIR_ERR_INTERNAL_ERROR),
         "second CONNECT_OPEN refused");
    auto nd = call(s, io, kProcDomainLookupByName, 7, LookupByNameArgs{"zz"});
    auto err = decode<RemoteError>(nd.body);
    t.ok(err && err->code == VIR_ERR_NO_DOMAIN && err->domain == VIR_FROM_QEMU &&
             *err->message == "Domain not found: no domain with matching name 'zz'",
         "driver error travels as remote_error");
    t.eq(error_code(call(s, io, kProcDomainSuspend, 8, DomArgs{Driver1::dom()})), 0, "suspend on read-write");
    t.eq(d.suspends, 1, "driver called");
    t.ok(io.priorities == std::vector<bool>{true, false},
         "a lookup goes to the pool as high priority, suspend as low");

    // Events: two registrations, one filtered to another domain.
    auto r1 = decode<CallbackRegisterAnyRet>(call(s, io, kProcConnectDomainEventCallbackRegisterAny, 9,
                                                  CallbackRegisterAnyArgs{VIR_DOMAIN_EVENT_ID_LIFECYCLE, std::nullopt})
                                                 .body);
    DomainRef other{"b", *Uuid::parse("00000000-0000-0000-0000-000000000002"), -1};
    call(s, io, kProcConnectDomainEventCallbackRegisterAny, 10,
         CallbackRegisterAnyArgs{VIR_DOMAIN_EVENT_ID_LIFECYCLE, other});
    t.eq(error_code(call(s, io, kProcConnectDomainEventCallbackRegisterAny, 11, CallbackRegisterAnyArgs{26, {}})), 0,
         "event id 26 registers");
    t.eq(error_code(call(s, io, kProcConnectDomainEventCallbackRegisterAny, 12, CallbackRegisterAnyArgs{27, {}})),
         int32_t(VIR_ERR_INTERNAL_ERROR), "event id 27 refused");
    size_t before = io.out.size();
    s.deliver_lifecycle(Driver1::dom(), VIR_DOMAIN_EVENT_SUSPENDED, 0);
    t.eq(io.out.size(), before + 1, "only the matching registration gets the event");
    auto &ev = io.out.back();
    auto eh = parse_header(std::span<const uint8_t>(ev).subspan(4));
    auto body = decode<CallbackLifecycleMsg>(std::span<const uint8_t>(ev).subspan(28));
    t.ok(eh && eh->type == MessageType::Message && eh->serial == 1 && eh->proc == kProcDomainEventCallbackLifecycle &&
             body && body->callback_id == r1->callback_id && body->msg.dom == Driver1::dom() &&
             body->msg.event == VIR_DOMAIN_EVENT_SUSPENDED,
         "lifecycle event message");
    t.eq(error_code(call(s, io, kProcConnectDomainEventCallbackDeregisterAny, 13,
                         CallbackDeregisterAnyArgs{r1->callback_id})),
         0, "deregister");
    before = io.out.size();
    s.deliver_lifecycle(Driver1::dom(), VIR_DOMAIN_EVENT_RESUMED, 0);
    t.eq(io.out.size(), before, "no event after deregistration");
    t.eq(error_code(call(s, io, kProcConnectDomainEventRegisterAny, 14, RegisterAnyArgs{8})), 0, "legacy register");
    t.eq(error_code(call(s, io, kProcConnectDomainEventRegisterAny, 15, RegisterAnyArgs{8})),
         int32_t(VIR_ERR_INTERNAL_ERROR), "legacy double register refused");
    before = io.out.size();
    s.deliver_block_job(Driver1::dom(), "/p.qcow2", "vda", 2, 3);
    auto bh = parse_header(std::span<const uint8_t>(io.out.back()).subspan(4));
    t.ok(io.out.size() == before + 1 && bh->proc == kProcDomainEventBlockJob, "legacy block job event (241)");
    auto r8 = decode<CallbackRegisterAnyRet>(call(s, io, kProcConnectDomainEventCallbackRegisterAny, 30,
                                                  CallbackRegisterAnyArgs{VIR_DOMAIN_EVENT_ID_BLOCK_JOB, {}})
                                                 .body);
    auto r16 = decode<CallbackRegisterAnyRet>(call(s, io, kProcConnectDomainEventCallbackRegisterAny, 31,
                                                   CallbackRegisterAnyArgs{VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, {}})
                                                  .body);
    before = io.out.size();
    s.deliver_block_job(Driver1::dom(), "/p.qcow2", "vda", VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT,
                        VIR_DOMAIN_BLOCK_JOB_READY);
    std::vector<int32_t> procs;
    for (size_t i = before; i < io.out.size(); i++)
        procs.push_back(parse_header(std::span<const uint8_t>(io.out[i]).subspan(4))->proc);
    t.ok(procs == std::vector<int32_t>{kProcDomainEventBlockJob, kProcDomainEventCallbackBlockJob,
                                       kProcDomainEventBlockJob2},
         "a block job goes to the legacy, BLOCK_JOB and BLOCK_JOB_2 registrations");
    auto cb = decode<CallbackBlockJobMsg>(std::span<const uint8_t>(io.out[before + 1]).subspan(28));
    auto b2 = decode<BlockJob2Msg>(std::span<const uint8_t>(io.out[before + 2]).subspan(28));
    t.ok(cb && r8 && cb->callback_id == r8->callback_id && cb->msg.path == "/p.qcow2" && cb->msg.type == 4 &&
             cb->msg.status == 3 && b2 && r16 && b2->callback_id == r16->callback_id && b2->dst == "vda",
         "BLOCK_JOB carries the path, BLOCK_JOB_2 the target, each with its callback id");
    before = io.out.size();
    s.deliver_block_job(Driver1::dom(), "", "vdb", VIR_DOMAIN_BLOCK_JOB_TYPE_COMMIT, VIR_DOMAIN_BLOCK_JOB_COMPLETED);
    t.ok(io.out.size() == before + 1 &&
             parse_header(std::span<const uint8_t>(io.out.back()).subspan(4))->proc == kProcDomainEventBlockJob2,
         "a disk without a local image gets only BLOCK_JOB_2 (qemuBlockJobEmitEvents)");

    call(s, io, kProcConnectClose, 16, Void{});
    t.ok(!s.is_open() && s.registrations().empty(), "CONNECT_CLOSE drops registrations");

    // The read-only socket forces VIR_CONNECT_RO.
    Io io2;
    Session ro(d, io2, 8, true);
    call(ro, io2, kProcConnectOpen, 0, ConnectOpenArgs{std::string("qemu:///system"), 0});
    auto denied = call(ro, io2, kProcDomainSuspend, 1, DomArgs{Driver1::dom()});
    auto derr = decode<RemoteError>(denied.body);
    t.ok(derr && derr->code == VIR_ERR_OPERATION_DENIED &&
             *derr->message == "operation forbidden: read only access prevents virDomainSuspend" && d.suspends == 1,
         "read-only socket: suspend refused, driver not called");
    auto xml = call(ro, io2, kProcDomainGetXmlDesc, 2, DomFlagsArgs{Driver1::dom(), VIR_DOMAIN_XML_SECURE});
    t.eq(error_code(xml), int32_t(VIR_ERR_OPERATION_DENIED), "read-only: secure XML refused");
    auto unknown = call(ro, io2, 9999, 3, Void{});
    auto uerr = decode<RemoteError>(unknown.body);
    t.ok(uerr && uerr->code == VIR_ERR_RPC && uerr->domain == VIR_FROM_RPC &&
             *uerr->message == "unknown procedure: 9999" && unknown.h.serial == 3,
         "a number libvirt does not know: VIR_ERR_RPC 'unknown procedure' (virNetServerProgramDispatchCall)");
    auto unserved = call(ro, io2, 5, 4, Void{});
    t.eq(error_code(unserved), int32_t(VIR_ERR_NO_SUPPORT), "a libvirt procedure virtsnap does not serve: NO_SUPPORT");
    Header h{0x12345678, 1, 1, MessageType::Call, 5, MessageStatus::Ok};
    xdr::Encoder e;
    begin_packet(e, h);
    (void)finish_packet(e);
    ro.handle_packet(std::span<const uint8_t>(e.bytes()).subspan(4));
    auto perr = decode<RemoteError>(std::span<const uint8_t>(io2.out.back()).subspan(28));
    t.ok(perr && perr->code == VIR_ERR_RPC && *perr->message == "Cannot find program 305419896 version 1",
         "an unknown program: virNetServerProgramUnknownError's VIR_ERR_RPC");
}

}  // namespace

int main() {
    test::Tap t;
    test_table(t);
    test_session(t);
    return t.finish();
}
