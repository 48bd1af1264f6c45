// relay_direct_copy.cc - the O_DIRECT copy of virtsnap-relay (see
// relay_direct_copy.hh). Plain C++ and POSIX only: the relay links nothing
// of the daemon.

#include "qemu/relay_direct_copy.hh"

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

namespace virtsnap::relay {

namespace {

// O_DIRECT wants buffers, offsets and lengths aligned to the device's logical
// block: 4 KiB covers 512-byte and 4 KiB devices alike.
constexpr size_t kAlign = 4096;
// Four buffers of 4 MiB: the reader fills one while the writer writes
// another (measured: 2 and 8 MiB buffers gave the same rate).
constexpr size_t kBuffers = 4;
constexpr size_t kBufferBytes = size_t(4) << 20;

struct Chunk {
    char *data;
    size_t len;
    uint64_t offset;
};

int pwrite_all(int fd, const char *buf, size_t len, uint64_t offset) {
    while (len > 0) {
        ssize_t n = ::pwrite(fd, buf, len, off_t(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EIO;
        buf += n;
        len -= size_t(n);
        offset += uint64_t(n);
    }
    return 0;
}

// Whole blocks of an aligned chunk go through `direct`, the rest through
// `buffered`; a chunk that starts unaligned (the head) goes buffered whole.
int write_chunk(const Chunk &c, int buffered, int direct) {
    size_t whole = c.offset % kAlign == 0 ? c.len / kAlign * kAlign : 0;
    if (whole > 0)
        if (int e = pwrite_all(direct, c.data, whole, c.offset)) return e;
    if (whole < c.len) return pwrite_all(buffered, c.data + whole, c.len - whole, c.offset + whole);
    return 0;
}

class Pipeline {
public:
    Pipeline(int buffered, int direct) : buffered_(buffered), direct_(direct) {}

    // A buffer the reader may fill: waits while all are with the writer.
    char *take_free() {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return !free_.empty(); });
        char *b = free_.back();
        free_.pop_back();
        return b;
    }
    void give_back(char *b) {
        std::lock_guard lk(mu_);
        free_.push_back(b);
        cv_.notify_all();
    }
    void push(Chunk c) {
        std::lock_guard lk(mu_);
        queue_.push_back(c);
        cv_.notify_all();
    }
    void close() {
        std::lock_guard lk(mu_);
        closed_ = true;
        cv_.notify_all();
    }
    // The first failure, once the writer stopped writing (0 while none).
    int failure() {
        std::lock_guard lk(mu_);
        return failure_;
    }
    // Stops writing: what is queued and what comes is dropped. Returns once
    // no write is in flight, so that a truncation after it is the last word.
    void stop_writing() {
        std::unique_lock lk(mu_);
        writing_ = false;
        cv_.wait(lk, [&] { return !in_flight_; });
    }

    void add_buffer(char *b) { free_.push_back(b); }

    void run_writer() {
        for (;;) {
            Chunk c;
            bool write;
            {
                std::unique_lock lk(mu_);
                cv_.wait(lk, [&] { return !queue_.empty() || closed_; });
                if (queue_.empty()) return;
                c = queue_.front();
                queue_.pop_front();
                write = writing_ && failure_ == 0;
                in_flight_ = write;
            }
            int e = write ? write_chunk(c, buffered_, direct_) : 0;
            std::lock_guard lk(mu_);
            in_flight_ = false;
            if (e && failure_ == 0) failure_ = e;
            free_.push_back(c.data);
            cv_.notify_all();
        }
    }

private:
    int buffered_, direct_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<char *> free_;
    std::deque<Chunk> queue_;
    bool closed_ = false, writing_ = true, in_flight_ = false;
    int failure_ = 0;
};

struct FreeDeleter {
    void operator()(char *p) const { std::free(p); }
};

}  // namespace

int direct_copy(int stream, int image, int image_direct, uint64_t offset, const volatile sig_atomic_t &abandoned) {
    std::vector<std::unique_ptr<char, FreeDeleter>> storage;
    Pipeline pipeline(image, image_direct);
    for (size_t i = 0; i < kBuffers; ++i) {
        void *p = nullptr;
        if (::posix_memalign(&p, kAlign, kBufferBytes) != 0) return ENOMEM;
        storage.emplace_back(static_cast<char *>(p));
        pipeline.add_buffer(storage.back().get());
    }
    std::thread writer([&] { pipeline.run_writer(); });

    uint64_t pos = offset;
    bool dropping = false;
    int read_failure = 0;
    // The head: up to the first block boundary, so every later chunk is aligned.
    size_t next_len = size_t((kAlign - offset % kAlign) % kAlign);
    if (next_len == 0) next_len = kBufferBytes;
    auto start_dropping = [&] {
        // Nothing that could pass for a complete image stays behind.
        dropping = true;
        pipeline.stop_writing();
        (void)::ftruncate(image, off_t(offset));
    };
    for (bool eof = false; !eof;) {
        if (!dropping && (abandoned || pipeline.failure())) start_dropping();
        char *buf = pipeline.take_free();
        size_t len = 0;
        while (len < next_len) {
            ssize_t n = ::read(stream, buf + len, next_len - len);
            if (n > 0) {
                len += size_t(n);
                continue;
            }
            if (n == 0) {
                eof = true;
                break;
            }
            if (errno == EINTR) {
                if (abandoned) break;  // seen at the top of the loop
                continue;
            }
            read_failure = errno;
            eof = true;
            break;
        }
        // A read cut short by the abandonment is not queued: it would leave
        // the chunks after it unaligned, and they are dropped anyway.
        if (abandoned && !dropping) start_dropping();
        if (len == 0 || dropping) {
            pipeline.give_back(buf);
        } else {
            pipeline.push({buf, len, pos});
            pos += len;
        }
        next_len = kBufferBytes;
    }
    pipeline.close();
    writer.join();
    int failure = pipeline.failure();
    if (failure == 0) failure = read_failure;
    if ((failure || abandoned) && !dropping) (void)::ftruncate(image, off_t(offset));
    return abandoned && failure == 0 ? 0 : failure;
}

}  // namespace virtsnap::relay
