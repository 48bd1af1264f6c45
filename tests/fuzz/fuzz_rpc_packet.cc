// fuzz_rpc_packet.cc - libFuzzer target for the server's packet path: framing
// (length word checks), header parsing, and every dispatch-table handler's
// argument decoding, driver call and reply encoding, through a real Session.
//
// Input layout: the bytes are a stream of packets as a client would send them,
// after a canned CONNECT_OPEN so calls reach the driver. If the first byte is
// odd, the rest is instead fed as a payload straight to one procedure's handler
// chosen by the second byte, which reaches the decoders without a valid header.

#include "rpc/dispatch.hh"
#include "rpc/packet.hh"
#include "rpc/remote_protocol.hh"
#include "rpc/session.hh"

#include <cstddef>
#include <cstdint>
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

class FuzzIo : public SessionIo {
public:
    size_t sent = 0;
    void send(std::vector<uint8_t> packet) override { sent += packet.size(); }
    void submit(std::function<std::vector<uint8_t>()> job) override { send(job()); }
    void start_keepalive() override {}
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

    // The same framing rules as rpc::Connection: a bad length ends the stream.
    std::span<const uint8_t> in(data + 1, size - 1);
    while (in.size() >= kLengthWordSize) {
        uint32_t len = read_length_word(in.first<4>());
        if (!check_length(len) || len > in.size()) break;
        session.handle_packet(in.subspan(kLengthWordSize, len - kLengthWordSize));
        in = in.subspan(len);
    }
    session.deliver_lifecycle(DomainRef{"a", Uuid{}, 1}, 0, 0);
    session.deliver_block_job(DomainRef{"a", Uuid{}, 1}, "/p", "vda", 2, 3);
    session.deliver_job_completed(DomainRef{"a", Uuid{}, 1}, {{"k", uint64_t(1)}});
    return 0;
}
