// session.cc - per-connection protocol handling: handshake, connection-level
// procedures, event registrations, and hand-off of driver calls.

#include "rpc/session.hh"

#include "rpc/remote_protocol.hh"
#include "rpc/replies.hh"

#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <atomic>

#define LOG_MODULE "rpc.session"

namespace virtsnap::rpc {

namespace {

// libvirtd numbers event callbacks across all clients; so do we.
std::atomic<int32_t> next_callback_id{1};

// VIR_DRV_FEATURE_* numbers (libvirt's src/libvirt_internal.h).
enum Feature : int32_t {
    kFeatureFdPassing = 8,
    kFeatureTypedParamString = 9,
    kFeatureProgramKeepalive = 10,
    kFeatureRemoteEventCallback = 14,
    kFeatureRemoteCloseCallback = 15,
    kFeatureNetworkUpdateHasCorrectOrder = 16,
};

Error not_open_error() { return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, "connection not open"); }

}  // namespace

bool feature_supported(int32_t feature) {
    switch (feature) {
    case kFeatureTypedParamString:
    case kFeatureProgramKeepalive:
    case kFeatureRemoteEventCallback:
    case kFeatureRemoteCloseCallback:
    case kFeatureNetworkUpdateHasCorrectOrder:
        return true;
    default:
        // Migration features: no migration here. FD passing: no CALL_WITH_FDS support.
        return false;
    }
}

Session::Session(Driver &driver, SessionIo &io, uint64_t connection_id, bool read_only_socket)
    : driver_(driver), io_(io) {
    client_.connection_id = connection_id;
    client_.read_only = read_only_socket;
}

template <typename T>
void Session::reply(const Header &h, const T &body) {
    auto bytes = encode_body(body);
    if (!bytes) {
        reply_error(h, bytes.error());
        return;
    }
    io_.send(make_reply(h, *bytes));
}

void Session::reply_error(const Header &h, const Error &err) {
    VS_DEBUG("connection %llu: procedure %d serial %u fails: %s", (unsigned long long)client_.connection_id,
             h.proc, h.serial, err.message().c_str());
    io_.send(make_error_reply(h, err));
}

void Session::handle_packet(std::span<const uint8_t> packet) {
    auto parsed = parse_header(packet);
    if (!parsed) return;  // the framing layer guarantees a full header
    const Header &h = *parsed;
    std::span<const uint8_t> payload = packet.subspan(kHeaderSize);

    if (h.prog == kKeepaliveProgram) {
        io_.keepalive_seen();
        if (h.type == MessageType::Message && h.proc == kKeepalivePing) io_.send(make_keepalive(kKeepalivePong));
        return;
    }
    if (h.type != MessageType::Call && h.type != MessageType::CallWithFds) {
        // Nothing else is expected from a client without streams; libvirtd ignores it too.
        VS_DEBUG("ignoring message type %d for procedure %d", int(h.type), h.proc);
        return;
    }
    if (h.type == MessageType::CallWithFds) {
        reply_error(h, make_error(VIR_ERR_NO_SUPPORT, VIR_FROM_RPC, "file descriptor passing"));
        return;
    }
    if (h.status != MessageStatus::Ok) {
        reply_error(h, make_error(VIR_ERR_RPC, VIR_FROM_RPC,
                                  "Unexpected message status " + std::to_string(int(h.status))));
        return;
    }
    if (h.prog != kRemoteProgram || h.vers != kProtocolVersion) {
        // virNetServerProgramUnknownError's words (numbers printed with %d).
        reply_error(h, make_error(VIR_ERR_RPC, VIR_FROM_RPC,
                                  "Cannot find program " + std::to_string(int32_t(h.prog)) + " version " +
                                      std::to_string(int32_t(h.vers))));
        return;
    }
    handle_call(h, payload);
}

void Session::handle_call(const Header &h, std::span<const uint8_t> payload) {
    if (handle_session_call(h, payload)) return;

    const ProcedureInfo *p = find_procedure(h.proc);
    if (!p) {
        // A number libvirt 9.0 does not have is libvirtd's RPC error; one it has
        // but virtsnap does not serve is what a driver without the API answers.
        if (h.proc < 1 || h.proc > kLastRemoteProcedure)
            reply_error(h, make_error(VIR_ERR_RPC, VIR_FROM_RPC, "unknown procedure: " + std::to_string(h.proc)));
        else
            reply_error(h, make_error(VIR_ERR_NO_SUPPORT, VIR_FROM_RPC,
                                      "unknown procedure: " + std::to_string(h.proc)));
        return;
    }
    if (!open_) {
        reply_error(h, not_open_error());
        return;
    }
    if (client_.read_only && p->access == Access::Write) {
        reply_error(h, read_only_error(p->api));
        return;
    }
    // The worker gets its own copies: the packet buffer and this session may be
    // gone before it runs (the client disconnected).
    Driver *driver = &driver_;
    Client client = client_;
    Handler handler = p->handler;
    io_.submit(
        [driver, client, handler, h, args = std::vector<uint8_t>(payload.begin(), payload.end())] {
            CallContext ctx{*driver, client};
            auto body = handler(ctx, args);
            if (!body) return make_error_reply(h, body.error());
            return make_reply(h, *body);
        },
        p->priority == Priority::High);
}

bool Session::handle_session_call(const Header &h, std::span<const uint8_t> payload) {
    // Answers `h` with an error; returns true (the call was handled) for brevity below.
    auto refuse = [&](const Error &err) {
        reply_error(h, err);
        return true;
    };
    auto needs_open = [&]() {
        if (open_) return true;
        reply_error(h, not_open_error());
        return false;
    };

    switch (h.proc) {
    case kProcAuthList: {
        AuthListRet r;
        r.types.push_back(kAuthNone);
        reply(h, r);
        return true;
    }
    case kProcConnectSupportsFeature: {
        // Answered before CONNECT_OPEN too: clients probe keepalive first.
        auto a = decode<SupportsFeatureArgs>(payload);
        if (!a) return refuse(a.error());
        bool yes = feature_supported(a->feature);
        if (a->feature == kFeatureProgramKeepalive) io_.start_keepalive();
        reply(h, IntRet{yes ? 1 : 0});
        return true;
    }
    case kProcConnectOpen: {
        auto a = decode<ConnectOpenArgs>(payload);
        if (!a) return refuse(a.error());
        if (open_) return refuse(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC, "connection already open"));
        uint32_t flags = a->flags;
        if (client_.read_only) flags |= VIR_CONNECT_RO;  // the read-only socket forces it
        Client c = client_;
        c.read_only = (flags & VIR_CONNECT_RO) != 0;
        if (auto st = driver_.connect_open(c, a->name, flags); !st) return refuse(st.error());
        client_ = c;
        open_ = true;
        reply(h, Void{});
        return true;
    }
    case kProcConnectClose:
        if (open_) driver_.connect_close(client_);
        open_ = false;
        registrations_.clear();
        reply(h, Void{});
        return true;
    case kProcConnectRegisterCloseCallback:
    case kProcConnectUnregisterCloseCallback:
        // The daemon never closes a connection on its own; the callback never fires.
        if (needs_open()) reply(h, Void{});
        return true;
    case kProcConnectIsSecure:
        // A UNIX socket never leaves the host.
        if (needs_open()) reply(h, IntRet{1});
        return true;
    case kProcConnectDomainEventCallbackRegisterAny: {
        if (!needs_open()) return true;
        auto a = decode<CallbackRegisterAnyArgs>(payload);
        if (!a) return refuse(a.error());
        if (a->event_id < 0 || a->event_id >= kDomainEventIdCount)
            return refuse(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC,
                                     "unsupported event ID " + std::to_string(a->event_id)));
        EventRegistration r;
        r.callback_id = next_callback_id.fetch_add(1);
        r.event_id = a->event_id;
        if (a->dom) r.domain = a->dom->uuid;
        registrations_.push_back(r);
        reply(h, CallbackRegisterAnyRet{r.callback_id});
        return true;
    }
    case kProcConnectDomainEventCallbackDeregisterAny: {
        if (!needs_open()) return true;
        auto a = decode<CallbackDeregisterAnyArgs>(payload);
        if (!a) return refuse(a.error());
        auto it = std::find_if(registrations_.begin(), registrations_.end(), [&](const EventRegistration &r) {
            return !r.legacy && r.callback_id == a->callback_id;
        });
        if (it == registrations_.end())
            return refuse(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC,
                                     "domain event callback " + std::to_string(a->callback_id) +
                                         " not registered"));
        registrations_.erase(it);
        reply(h, Void{});
        return true;
    }
    case kProcConnectDomainEventRegisterAny:
    case kProcConnectDomainEventDeregisterAny: {
        if (!needs_open()) return true;
        auto a = decode<RegisterAnyArgs>(payload);
        if (!a) return refuse(a.error());
        if (a->event_id < 0 || a->event_id >= kDomainEventIdCount)
            return refuse(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC,
                                     "unsupported event ID " + std::to_string(a->event_id)));
        auto it = std::find_if(registrations_.begin(), registrations_.end(), [&](const EventRegistration &r) {
            return r.legacy && r.event_id == a->event_id;
        });
        std::string id = std::to_string(a->event_id);
        if (h.proc == kProcConnectDomainEventRegisterAny) {
            if (it != registrations_.end())
                return refuse(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC,
                                         "domain event " + id + " already registered"));
            registrations_.push_back({next_callback_id.fetch_add(1), a->event_id, std::nullopt, true});
        } else {
            if (it == registrations_.end())
                return refuse(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_RPC,
                                         "domain event " + id + " not registered"));
            registrations_.erase(it);
        }
        reply(h, Void{});
        return true;
    }
    default:
        return false;
    }
}

bool Session::matches(const EventRegistration &r, int32_t event_id, const DomainRef &dom) const {
    return open_ && r.event_id == event_id && (!r.domain || *r.domain == dom.uuid);
}

namespace {
template <typename T>
void send_event(SessionIo &io, int32_t proc, const T &msg) {
    auto body = encode_body(msg);
    if (!body) {
        VS_WARN("dropping event %d: %s", proc, body.error().message().c_str());
        return;
    }
    io.send(make_event(proc, *body));
}
}  // namespace

void Session::deliver_lifecycle(const DomainRef &dom, int32_t event, int32_t detail) {
    for (const auto &r : registrations_) {
        if (!matches(r, VIR_DOMAIN_EVENT_ID_LIFECYCLE, dom)) continue;
        LifecycleMsg msg{dom, event, detail};
        if (r.legacy) send_event(io_, kProcDomainEventLifecycle, msg);
        else send_event(io_, kProcDomainEventCallbackLifecycle, CallbackLifecycleMsg{r.callback_id, msg});
    }
}

void Session::deliver_block_job(const DomainRef &dom, const std::string &path, const std::string &target,
                                int32_t type, int32_t status) {
    for (const auto &r : registrations_) {
        // BLOCK_JOB names the disk by its image, so a disk without a local one gets only BLOCK_JOB_2.
        if (!path.empty() && matches(r, VIR_DOMAIN_EVENT_ID_BLOCK_JOB, dom)) {
            BlockJobMsg msg{dom, path, type, status};
            if (r.legacy) send_event(io_, kProcDomainEventBlockJob, msg);
            else send_event(io_, kProcDomainEventCallbackBlockJob, CallbackBlockJobMsg{r.callback_id, msg});
        }
        // BLOCK_JOB_2 has only the callback form; legacy registrations get it with their id.
        if (matches(r, VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, dom))
            send_event(io_, kProcDomainEventBlockJob2, BlockJob2Msg{r.callback_id, dom, target, type, status});
    }
}

void Session::deliver_job_completed(const DomainRef &dom, const std::vector<TypedParam> &params) {
    for (const auto &r : registrations_) {
        if (!matches(r, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, dom)) continue;
        CallbackJobCompletedMsg msg;
        msg.callback_id = r.callback_id;
        msg.dom = dom;
        msg.params = params;
        send_event(io_, kProcDomainEventCallbackJobCompleted, msg);
    }
}

}  // namespace virtsnap::rpc
