// memoryrelaytest.cc - virtsnap-relay, the real executable, without QEMU: a
// pipe stands in for QEMU's stream. Every word of its protocol (write, drop,
// the daemon gone), abandoning mid-stream, a write error, and how recovery
// finds and waits for a relay (qemu/memory_relay.hh); the same for its
// O_DIRECT copy (qemu/relay_direct_copy.hh), whose head, aligned body and
// tail must land byte for byte where the stream says.

#include "qemu/memory_relay.hh"
#include "qemu/migration_gate.hh"
#include "testutils/tap.hh"
#include "util/file.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

using namespace virtsnap;
using namespace virtsnap::qemu;
using virtsnap::test::Tap;

namespace {

constexpr uint64_t kOffset = 100;
const std::string kHeader(kOffset, 'H');

struct Scene {
    std::string dir, path;
    UniqueFd image;
    MigrationGate gate;
};

Scene make_scene(Tap &tap, const std::string &name) {
    Scene s;
    char tmpl[] = "/tmp/memoryrelaytest-XXXXXX";
    s.dir = ::mkdtemp(tmpl) ? tmpl : "/tmp";
    s.path = s.dir + "/" + name;
    s.image.reset(::open(s.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (::write(s.image.get(), kHeader.data(), kHeader.size()) != ssize_t(kHeader.size()))
        tap.note("cannot write the header of " + s.path);
    auto g = MigrationGate::shut();
    if (!tap.ok(g.has_value(), name + ": the gate is shut", g ? "" : g.error().message())) std::exit(1);
    s.gate = std::move(g).value();
    return s;
}

// What QEMU would write, from a thread: `bytes` of a pattern, then EOF.
std::thread write_stream(Scene &s, size_t bytes) {
    int fd = ::dup(s.gate.write_end());
    s.gate.close_write_end();
    return std::thread([fd, bytes] {
        std::string chunk(65536, 'm');
        for (size_t done = 0; done < bytes;) {
            size_t n = std::min(chunk.size(), bytes - done);
            ssize_t w = ::write(fd, chunk.data(), n);
            if (w <= 0) break;
            done += size_t(w);
        }
        ::close(fd);
    });
}

// The stream's byte at `i`: a period (251) that no block size divides, so a
// chunk written one block off shows.
char pattern_at(uint64_t i) { return char('a' + i % 251 % 26); }

// A direct relay's scene: a plain pipe (no gate) and `bytes` of the pattern
// written into it from a thread, `pause_after` bytes first and the rest once
// `go` is set (nullptr: all at once).
struct DirectScene {
    std::string dir, path;
    UniqueFd image;
    std::thread qemu;
};

DirectScene make_direct_scene(const std::string &name, UniqueFd &read_end, size_t bytes, size_t pause_after = 0,
                              std::atomic<bool> *go = nullptr) {
    DirectScene s;
    char tmpl[] = "/var/tmp/memoryrelaytest-XXXXXX";
    s.dir = ::mkdtemp(tmpl) ? tmpl : "/var/tmp";
    s.path = s.dir + "/" + name;
    s.image.reset(::open(s.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    (void)!::write(s.image.get(), kHeader.data(), kHeader.size());
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) < 0) std::exit(1);
    read_end.reset(ends[0]);
    int fd = ends[1];
    s.qemu = std::thread([fd, bytes, pause_after, go] {
        std::string chunk(32768, '\0');
        for (uint64_t done = 0; done < bytes;) {
            if (go && done >= pause_after)
                while (!go->load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            size_t n = std::min<uint64_t>(chunk.size(), bytes - done);
            for (size_t i = 0; i < n; ++i) chunk[i] = pattern_at(done + i);
            ssize_t w = ::write(fd, chunk.data(), n);
            if (w <= 0) break;
            done += uint64_t(w);
        }
        ::close(fd);
    });
    return s;
}

bool holds_pattern(const std::string &path, uint64_t bytes) {
    auto text = file::read(path, 64u << 20);
    if (!text || text->size() != kOffset + bytes || text->compare(0, kOffset, kHeader) != 0) return false;
    for (uint64_t i = 0; i < bytes; ++i)
        if ((*text)[kOffset + i] != pattern_at(i)) return false;
    return true;
}

uint64_t size_of(const std::string &path) {
    struct stat sb {};
    return ::stat(path.c_str(), &sb) == 0 ? uint64_t(sb.st_size) : 0;
}

}  // namespace

int main() {
    Tap tap;
    tap.note("relay: " + relay_binary());
    constexpr size_t kStream = 8u << 20;

    {   // 'g': the stream lands after the header, the filler does not
        Scene s = make_scene(tap, "write");
        auto r = MemoryRelay::start(s.gate.take_read_end(), s.image.get(), kOffset, MigrationGate::kFillerBytes);
        if (!tap.ok(r.has_value(), "write: relay starts", r ? "" : r.error().message())) return tap.finish();
        std::thread qemu = write_stream(s, kStream);
        // The relay takes its lock first thing after exec.
        bool locked = false;
        for (int i = 0; i < 200 && !locked; ++i) {
            locked = !wait_for_memory_relay(s.path, std::chrono::milliseconds(20));
            if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        tap.ok(locked, "write: recovery's wait sees the relay's lock while it waits for its word");
        tap.ok(r->open_gate().has_value(), "write: open_gate");
        qemu.join();
        auto fin = r->finish(std::chrono::seconds(30));
        tap.ok(fin.has_value(), "write: finish", fin ? "" : fin.error().message());
        tap.eq(size_of(s.path), kOffset + kStream, "write: header + stream, no filler");
        auto text = file::read(s.path, 64u << 20);
        tap.ok(text && text->compare(0, kOffset, kHeader) == 0 && text->find_first_not_of('m', kOffset) == std::string::npos,
               "write: the header untouched, the stream after it");
        // The lock belongs to the open file the relay shared with us (as with
        // the daemon's image writer): free once both are closed.
        s.image.reset();
        tap.ok(wait_for_memory_relay(s.path, std::chrono::milliseconds(1000)), "write: the lock is free once it ended");
    }
    {   // 'd': nothing written, the stream still read to its end
        Scene s = make_scene(tap, "discard");
        auto r = MemoryRelay::start(s.gate.take_read_end(), s.image.get(), kOffset, MigrationGate::kFillerBytes);
        if (!r) return tap.finish();
        std::thread qemu = write_stream(s, kStream);
        tap.ok(r->discard().has_value(), "discard: word sent");
        qemu.join();
        tap.ok(r->finish(std::chrono::seconds(30)).has_value(), "discard: finish");
        tap.eq(size_of(s.path), kOffset, "discard: nothing after the header");
    }
    {   // the daemon gone before its word (its end of the control pipe closed): writes
        Scene s = make_scene(tap, "orphan");
        int control[2];
        if (::pipe2(control, O_CLOEXEC) < 0) return tap.finish();
        UniqueFd control_read(control[0]), control_write(control[1]);
        UniqueFd stream = s.gate.take_read_end();
        process::SpawnOptions so;
        so.argv = {relay_binary(), std::to_string(kOffset), std::to_string(MigrationGate::kFillerBytes)};
        so.pass_fds = {{stream.get(), 3}, {control_read.get(), 4}, {s.image.get(), 5}};
        auto child = process::Child::spawn(so);
        if (!tap.ok(child.has_value(), "orphan: relay starts")) return tap.finish();
        stream.reset();
        control_read.reset();
        std::thread qemu = write_stream(s, kStream);
        control_write.reset();
        qemu.join();
        auto st = child->wait();
        tap.ok(st && st->success(), "orphan: the relay ends well", st ? st->describe() : st.error().message());
        tap.eq(size_of(s.path), kOffset + kStream, "orphan: EOF on the control pipe counts as write");
    }
    {   // abandoned mid-stream: truncated to the offset, stream drained
        Scene s = make_scene(tap, "abandon");
        auto r = MemoryRelay::start(s.gate.take_read_end(), s.image.get(), kOffset, MigrationGate::kFillerBytes);
        if (!r) return tap.finish();
        int fd = ::dup(s.gate.write_end());
        s.gate.close_write_end();
        tap.ok(r->open_gate().has_value(), "abandon: open_gate");
        std::string chunk(1u << 20, 'm');
        for (int i = 0; i < 4; ++i) (void)!::write(fd, chunk.data(), chunk.size());
        for (int i = 0; i < 200 && size_of(s.path) < kOffset + (3u << 20); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        tap.ok(size_of(s.path) > kOffset, "abandon: some of the stream written first");
        tap.ok(abandon_memory_relay(s.path), "abandon: recovery finds the relay through /proc");
        for (int i = 0; i < 4; ++i) (void)!::write(fd, chunk.data(), chunk.size());
        ::close(fd);
        tap.ok(r->finish(std::chrono::seconds(30)).has_value(), "abandon: finish");
        tap.eq(size_of(s.path), kOffset, "abandon: the image holds no memory");
    }
    {   // a write error: reported with its errno, the stream still drained
        Scene s = make_scene(tap, "full");
        UniqueFd full(::open("/dev/full", O_WRONLY | O_CLOEXEC));
        auto r = MemoryRelay::start(s.gate.take_read_end(), full.get(), 0, MigrationGate::kFillerBytes);
        if (!r) return tap.finish();
        std::thread qemu = write_stream(s, kStream);
        tap.ok(r->open_gate().has_value(), "full: open_gate");
        qemu.join();
        auto fin = r->finish(std::chrono::seconds(30));
        tap.ok(!fin && fin.error().code == VIR_ERR_OPERATION_FAILED &&
                   fin.error().detail == "cannot write the memory image: No space left on device",
               "full: the stream read to its end, ENOSPC reported", fin ? "succeeded" : fin.error().detail);
    }
    // ---- direct: the O_DIRECT copy of a paused guest's stream ----
    // Sizes that end inside a block, on a block and inside a buffer, at an
    // offset (100) that starts inside a block.
    for (uint64_t bytes : {uint64_t(9u << 20) + 12345, uint64_t(4096) * 3000, uint64_t(3000)}) {
        std::string name = "direct " + std::to_string(bytes);
        UniqueFd read_end;
        DirectScene s = make_direct_scene("direct", read_end, bytes);
        auto r = MemoryRelay::start(std::move(read_end), s.image.get(), kOffset, 0, true);
        if (!tap.ok(r.has_value(), name + ": relay starts", r ? "" : r.error().message())) return tap.finish();
        tap.ok(r->open_gate().has_value(), name + ": open_gate");
        s.qemu.join();
        auto fin = r->finish(std::chrono::seconds(60));
        tap.ok(fin.has_value(), name + ": finish", fin ? "" : fin.error().message());
        tap.ok(holds_pattern(s.path, bytes), name + ": header untouched, every byte of the stream in place");
    }
    {   // abandoned mid-stream: truncated to the offset, the rest drained
        std::atomic<bool> go{false};
        UniqueFd read_end;
        constexpr size_t kBytes = 24u << 20;
        DirectScene s = make_direct_scene("direct-abandon", read_end, kBytes, 12u << 20, &go);
        auto r = MemoryRelay::start(std::move(read_end), s.image.get(), kOffset, 0, true);
        if (!r) return tap.finish();
        tap.ok(r->open_gate().has_value(), "direct abandon: open_gate");
        for (int i = 0; i < 300 && size_of(s.path) < kOffset + (4u << 20); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        tap.ok(size_of(s.path) > kOffset, "direct abandon: some of the stream written first");
        tap.ok(abandon_memory_relay(s.path), "direct abandon: recovery finds the relay through /proc");
        go = true;
        s.qemu.join();
        tap.ok(r->finish(std::chrono::seconds(60)).has_value(), "direct abandon: finish");
        tap.eq(size_of(s.path), kOffset, "direct abandon: the image holds no memory");
    }
    {   // a write error: reported with its errno, the stream still drained
        UniqueFd read_end;
        DirectScene s = make_direct_scene("direct-full", read_end, 9u << 20);
        UniqueFd full(::open("/dev/full", O_WRONLY | O_CLOEXEC));
        auto r = MemoryRelay::start(std::move(read_end), full.get(), 0, 0, true);
        if (!r) return tap.finish();
        tap.ok(r->open_gate().has_value(), "direct full: open_gate");
        s.qemu.join();
        auto fin = r->finish(std::chrono::seconds(60));
        tap.ok(!fin && fin.error().code == VIR_ERR_OPERATION_FAILED &&
                   fin.error().detail == "cannot write the memory image: No space left on device",
               "direct full: the stream read to its end, ENOSPC reported", fin ? "succeeded" : fin.error().detail);
    }
    return tap.finish();
}
