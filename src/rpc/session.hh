// session.hh - the protocol state of one client connection, independent of
// sockets and threads: it takes whole packets in and hands packets out.
//
//   new --AUTH_LIST/SUPPORTS_FEATURE--> new --CONNECT_OPEN--> open --CONNECT_CLOSE--> closed
//
// Before CONNECT_OPEN only AUTH_LIST, SUPPORTS_FEATURE and CONNECT_OPEN are
// answered; other calls get libvirt's "connection not open". Connection-level
// procedures (open/close, features, close callbacks, event registration,
// keepalive) are answered here at once; everything else goes through the
// dispatch table to the Driver via SessionIo::submit, which may run it on
// another thread. The read-only flag comes from the socket or from CONNECT_OPEN's
// VIR_CONNECT_RO, and state-changing procedures are then refused.
#pragma once

#include "rpc/dispatch.hh"
#include "rpc/driver.hh"
#include "rpc/packet.hh"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace virtsnap::rpc {

// What a Session needs from its connection.
class SessionIo {
public:
    virtual ~SessionIo() = default;
    // Queues a packet for the client.
    virtual void send(std::vector<uint8_t> packet) = 0;
    // Runs `job` (a driver call) and sends the packet it returns, as a reply;
    // if the client went away meanwhile the packet is dropped. High-priority
    // jobs may also run on the priority workers (see WorkerPool).
    virtual void submit(std::function<std::vector<uint8_t>()> job, bool high_priority) = 0;
    // The client asked for keepalive (SUPPORTS_FEATURE 10): start pinging it.
    virtual void start_keepalive() = 0;
    // A keepalive PONG (or PING) arrived.
    virtual void keepalive_seen() {}
};

// Which domain events a client has asked for.
struct EventRegistration {
    int32_t callback_id = 0;
    int32_t event_id = 0;
    std::optional<Uuid> domain;  // filter: only events of this domain
    bool legacy = false;         // registered with 167: events without callbackID
};

class Session {
public:
    Session(Driver &driver, SessionIo &io, uint64_t connection_id, bool read_only_socket);

    // Handles one packet (without its length word). Malformed payloads and
    // unknown procedures get error replies; nothing here closes the connection.
    void handle_packet(std::span<const uint8_t> packet);

    // Event fan-out: sends one MESSAGE per matching registration.
    void deliver_lifecycle(const DomainRef &dom, int32_t event, int32_t detail);
    void deliver_block_job(const DomainRef &dom, const std::string &path, const std::string &target,
                           int32_t type, int32_t status);
    void deliver_job_completed(const DomainRef &dom, const std::vector<TypedParam> &params);

    bool is_open() const { return open_; }
    const Client &client() const { return client_; }
    const std::vector<EventRegistration> &registrations() const { return registrations_; }

private:
    void handle_call(const Header &h, std::span<const uint8_t> payload);
    // Answers connection-level procedures; false when `h.proc` is not one.
    bool handle_session_call(const Header &h, std::span<const uint8_t> payload);
    void reply_error(const Header &h, const Error &err);
    template <typename T>
    void reply(const Header &h, const T &body);
    bool matches(const EventRegistration &r, int32_t event_id, const DomainRef &dom) const;

    Driver &driver_;
    SessionIo &io_;
    Client client_;
    bool open_ = false;
    std::vector<EventRegistration> registrations_;
};

// libvirt's number of domain event ids in 9.0 (VIR_DOMAIN_EVENT_ID_LAST).
inline constexpr int32_t kDomainEventIdCount = 27;
// The last REMOTE procedure of libvirt 9.0 (REMOTE_PROC_DOMAIN_FD_ASSOCIATE).
inline constexpr int32_t kLastRemoteProcedure = 443;

// True for the VIR_DRV_FEATURE_* values virtsnap answers 1 to.
bool feature_supported(int32_t feature);

}  // namespace virtsnap::rpc
