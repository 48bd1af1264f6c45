// fuzz_rpc_packet.cc - libFuzzer target for the server's packet path: the
// framing of rpc::FrameReader (the code rpc::Connection reads its socket
// through: length word checks, partial packets, pausing at the in-flight
// limit), header parsing, and every dispatch-table handler's argument
// decoding, driver call and reply encoding, through a real Session.
//
// Input layout: the first byte is a mode; the rest is a stream of packets as a
// client would send them, after a canned CONNECT_OPEN so calls reach the
// driver. Mode bit 0 set: the rest is instead fed as a payload straight to one
// procedure's handler chosen by the second byte, which reaches the decoders
// without a valid header. Bit 1: a read-only connection. Bits 2..7: the rest
// arrives in chunks of that many bytes (0: all at once), as recv() may split it.

#include "rpc/connection.hh"
#include "rpc/dispatch.hh"
#include "rpc/frame_reader.hh"
#include "rpc/packet.hh"
#include "rpc/remote_protocol.hh"
#include "rpc/session.hh"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <vector>

using namespace virtsnap;
using namespace virtsnap::rpc;

namespace {

// Answers the calls whose replies carry arrays and strings, so encoders run too.
class FuzzDriver : public Driver {
public:
    Result<std::vector<DomainRef>> connect_list_all_domains(const Client &, uint32_t) override {
        return std::vector<DomainRef>{DomainRef{"a", Uuid{}, 1}};
    }
    Result<DomainRef> domain_lookup_by_name(const Client &, const std::string &name) override {
        return DomainRef{name, Uuid{}, -1};
    }
    Result<std::string> domain_get_xml_desc(const Client &, const DomainRef &d, uint32_t) override {
        return "<domain><name>" + d.name + "</name></domain>";
    }
    Result<JobStats> domain_get_job_stats(const Client &, const DomainRef &, uint32_t) override {
        return JobStats{3, {{"x", int32_t(1)}, {"s", std::string("v")}, {"d", 1.5}}};
    }
    Status domain_block_copy(const Client &, const DomainRef &, const std::string &, const std::string &,
                             const std::vector<TypedParam> &, uint32_t) override {
        return ok();
    }
};

// Driver calls wait in a queue as they would on the worker pool, so the
// reader pauses at the in-flight limit exactly as a Connection does.
class FuzzIo : public SessionIo {
public:
    size_t sent = 0;
    std::deque<std::function<std::vector<uint8_t>()>> pending;
    void send(std::vector<uint8_t> packet) override { sent += packet.size(); }
    void submit(std::function<std::vector<uint8_t>()> job, bool) override { pending.push_back(std::move(job)); }
    void start_keepalive() override {}
    void complete_one() {
        auto job = std::move(pending.front());
        pending.pop_front();
        send(job());
    }
};

std::vector<uint8_t> open_packet() {
    Header h{kRemoteProgram, 1, kProcConnectOpen, MessageType::Call, 0, MessageStatus::Ok};
    xdr::Encoder e;
    begin_packet(e, h);
    (void)encode(e, ConnectOpenArgs{std::string("qemu:///system"), 0});
    (void)finish_packet(e);
    return e.take();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FuzzDriver driver;
    if (size == 0) return 0;

    if (data[0] & 1) {
        if (size < 2) return 0;
        auto procs = procedures();
        const ProcedureInfo &p = procs[data[1] % procs.size()];
        CallContext ctx{driver, Client{1, (data[0] & 2) != 0}};
        (void)p.handler(ctx, std::span<const uint8_t>(data + 2, size - 2));
        return 0;
    }

    FuzzIo io;
    Session session(driver, io, 1, (data[0] & 2) != 0);
    auto open = open_packet();
    session.handle_packet(std::span<const uint8_t>(open).subspan(kLengthWordSize));

    FrameReader reader;
    ConnectionLimits limits;
    auto room = [&] { return io.pending.size() < limits.max_requests; };
    auto handle = [&](std::span<const uint8_t> packet) { session.handle_packet(packet); };
    size_t chunk = data[0] >> 2;
    std::span<const uint8_t> in(data + 1, size - 1);
    bool broken = false;
    while (!broken && (!in.empty() || !io.pending.empty())) {
        size_t n = chunk ? std::min(chunk, in.size()) : in.size();
        reader.append(in.first(n));
        in = in.subspan(n);
        // A bad length ends the stream, as it closes a Connection.
        broken = !reader.drain(room, handle);
        // Replies complete one at a time and let held-back packets proceed.
        while (!broken && !io.pending.empty()) {
            io.complete_one();
            broken = !reader.drain(room, handle);
        }
    }
    session.deliver_lifecycle(DomainRef{"a", Uuid{}, 1}, 0, 0);
    session.deliver_block_job(DomainRef{"a", Uuid{}, 1}, "/p", "vda", 2, 3);
    session.deliver_job_completed(DomainRef{"a", Uuid{}, 1}, {{"k", uint64_t(1)}});
    return 0;
}
