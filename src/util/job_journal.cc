// job_journal.cc - the job journal's file format, writer, reader and the
// start-up recovery dispatch. The format is described in docs/journal.md.

#define LOG_MODULE "util.journal"

#include "util/job_journal.hh"

#include "util/deferred_sync.hh"
#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"
#include "util/uuid.hh"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace virtsnap {

namespace {

constexpr virErrorDomain kDomain = VIR_FROM_NONE;

// File magic: name and format version 1.
constexpr std::string_view kMagic{"VSJRNL\0\1", 8};
// Record header: payload length, CRC-32C of the payload, CRC-32C of those 8 bytes.
constexpr size_t kHeaderSize = 12;
constexpr uint32_t kMaxPayload = 1u << 20;
constexpr size_t kMaxFile = 64u << 20;
constexpr size_t kMaxName = 128;

enum Kind : uint8_t { kBegin = 1, kIntent = 2, kDone = 3, kCommit = 4, kEnd = 5 };
enum ValueType : uint8_t { kString = 1, kInt = 2 };

const char *kind_name(int kind) {
    switch (kind) {
    case kBegin: return "begin";
    case kIntent: return "intent";
    case kDone: return "done";
    case kCommit: return "commit";
    case kEnd: return "end";
    }
    return "unknown";
}

constexpr std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[i] = c;
    }
    return t;
}
constexpr auto kCrcTable = make_crc_table();

// ---- encoding ----

void put_u32(std::string &out, uint32_t v) {
    for (int i = 0; i < 4; i++) out.push_back(char((v >> (8 * i)) & 0xff));
}
void put_u64(std::string &out, uint64_t v) {
    for (int i = 0; i < 8; i++) out.push_back(char((v >> (8 * i)) & 0xff));
}
void put_str(std::string &out, std::string_view s) {
    put_u32(out, uint32_t(s.size()));
    out.append(s);
}
void put_fields(std::string &out, const JournalFields &fields) {
    put_u32(out, uint32_t(fields.items().size()));
    for (const auto &[key, value] : fields.items()) {
        put_str(out, key);
        if (const auto *s = std::get_if<std::string>(&value)) {
            out.push_back(char(kString));
            put_str(out, *s);
        } else {
            out.push_back(char(kInt));
            put_u64(out, uint64_t(std::get<int64_t>(value)));
        }
    }
}

uint32_t get_u32(std::string_view b, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(b[at + i])) << (8 * i);
    return v;
}

std::string frame(std::string_view payload) {
    std::string rec;
    rec.reserve(kHeaderSize + payload.size());
    put_u32(rec, uint32_t(payload.size()));
    put_u32(rec, crc32c(payload));
    put_u32(rec, crc32c(rec));
    rec.append(payload);
    return rec;
}

// ---- decoding ----

// A bounds-checked cursor over one payload; any overrun sets `bad`.
struct Cursor {
    std::string_view b;
    size_t pos = 0;
    bool bad = false;

    bool need(size_t n) {
        if (bad || b.size() - pos < n) bad = true;
        return !bad;
    }
    uint8_t u8() { return need(1) ? uint8_t(b[pos++]) : 0; }
    uint32_t u32() {
        if (!need(4)) return 0;
        uint32_t v = get_u32(b, pos);
        pos += 4;
        return v;
    }
    uint64_t u64() {
        if (!need(8)) return 0;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v |= uint64_t(uint8_t(b[pos + i])) << (8 * i);
        pos += 8;
        return v;
    }
    std::string str() {
        uint32_t n = u32();
        if (!need(n)) return {};
        std::string s(b.substr(pos, n));
        pos += n;
        return s;
    }
    JournalFields fields() {
        JournalFields f;
        uint32_t n = u32();
        for (uint32_t i = 0; i < n && !bad; i++) {
            std::string key = str();
            if (f.has(key)) bad = true;
            switch (u8()) {
            case kString: f.set(std::move(key), str()); break;
            case kInt: f.set_num(std::move(key), int64_t(u64())); break;
            default: bad = true;
            }
        }
        return f;
    }
};

struct Record {
    int kind = 0;
    std::string name;
    std::string domain, job;  // begin only
    JournalFields fields;
};

std::optional<Record> decode(std::string_view payload) {
    Cursor c{payload};
    Record r;
    r.kind = c.u8();
    if (r.kind < kBegin || r.kind > kEnd) return std::nullopt;
    r.name = c.str();
    if (r.kind == kBegin) {
        r.domain = c.str();
        r.job = c.str();
    }
    r.fields = c.fields();
    if (c.bad || c.pos != payload.size()) return std::nullopt;
    return r;
}

std::string encode(int kind, std::string_view name, const JournalFields &fields, const JournalHeader *header = nullptr) {
    std::string p;
    p.push_back(char(kind));
    put_str(p, name);
    if (header) {
        put_str(p, header->domain_uuid);
        put_str(p, header->job_id);
    }
    put_fields(p, fields);
    return p;
}

// ---- names ----

bool valid_step_name(std::string_view s) {
    if (s.empty() || s.size() > kMaxName) return false;
    if (s == "begin" || s == "commit" || s == "end") return false;
    for (char c : s)
        if (c <= ' ' || c > '~' || c == ':' || c == '#') return false;
    return true;
}

bool valid_job_id(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    return true;
}

std::string generate_job_id() {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch()).count();
    Uuid rnd = Uuid::generate();
    char buf[48];
    std::snprintf(buf, sizeof buf, "%" PRIx64 "-%02x%02x%02x%02x", uint64_t(us), rnd.bytes[0], rnd.bytes[1],
                  rnd.bytes[2], rnd.bytes[3]);
    return buf;
}

Error corrupt(const std::string &path, uint64_t offset, const std::string &what) {
    return make_error(VIR_ERR_INTERNAL_ERROR, kDomain,
                      "job journal '" + path + "' is corrupt at offset " + std::to_string(offset) + ": " + what);
}

Status write_all(int fd, std::string_view data, uint64_t offset, const std::string &path) {
    if (int err = file::pwrite_all(fd, data, offset))
        return fail(make_system_error(kDomain, err, "cannot write job journal '" + path + "'"));
    return ok();
}

Status datasync(int fd, const std::string &path) {
    if (::fdatasync(fd) < 0) return fail(make_system_error(kDomain, errno, "cannot sync job journal '" + path + "'"));
    return ok();
}

// Applies one decoded record to the state, checking the record order.
std::optional<std::string> apply(JournalState &st, Record &r, std::vector<size_t> &open) {
    if (st.outcome) return std::string("record after the end record");
    if (!st.began && r.kind != kBegin) return std::string(kind_name(r.kind)) + " record before the begin record";
    switch (r.kind) {
    case kBegin:
        if (st.began) return std::string("second begin record");
        st.began = true;
        st.header = JournalHeader{std::move(r.name), std::move(r.domain), std::move(r.job), std::move(r.fields)};
        return std::nullopt;
    case kIntent:
        open.push_back(st.steps.size());
        st.steps.push_back(JournalStep{std::move(r.name), std::move(r.fields), false, {}, st.committed});
        return std::nullopt;
    case kDone:
        for (auto it = open.rbegin(); it != open.rend(); ++it) {
            JournalStep &s = st.steps[*it];
            if (s.name != r.name) continue;
            s.done = true;
            s.result = std::move(r.fields);
            open.erase(std::next(it).base());
            return std::nullopt;
        }
        return "done record of step '" + r.name + "' without its intent";
    case kCommit:
        if (st.committed) return std::string("second commit record");
        st.committed = true;
        st.commit_fields = std::move(r.fields);
        return std::nullopt;
    case kEnd:
        st.outcome = std::move(r.name);
        return std::nullopt;
    }
    return std::string("unknown record kind");
}

bool all_zero(std::string_view b) {
    for (char c : b)
        if (c != 0) return false;
    return true;
}

}  // namespace

uint32_t crc32c(std::string_view data, uint32_t crc) {
    crc = ~crc;
    for (char ch : data) crc = kCrcTable[(crc ^ uint8_t(ch)) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// ---- JournalFields ----

JournalFields &JournalFields::set(std::string key, std::string value) {
    map_.insert_or_assign(std::move(key), JournalValue(std::move(value)));
    return *this;
}

JournalFields &JournalFields::set_num(std::string key, int64_t value) {
    map_.insert_or_assign(std::move(key), JournalValue(value));
    return *this;
}

std::optional<std::string> JournalFields::str(std::string_view key) const {
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    if (const auto *s = std::get_if<std::string>(&it->second)) return *s;
    return std::nullopt;
}

std::optional<int64_t> JournalFields::num(std::string_view key) const {
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    if (const auto *n = std::get_if<int64_t>(&it->second)) return *n;
    return std::nullopt;
}

Result<std::string> JournalFields::need_str(std::string_view key) const {
    if (auto s = str(key)) return std::move(*s);
    return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "job journal record has no string field '" + std::string(key) + "'");
}

Result<int64_t> JournalFields::need_num(std::string_view key) const {
    if (auto n = num(key)) return *n;
    return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "job journal record has no integer field '" + std::string(key) + "'");
}

const JournalStep *JournalState::find(std::string_view name) const {
    for (auto it = steps.rbegin(); it != steps.rend(); ++it)
        if (it->name == name) return &*it;
    return nullptr;
}

// ---- writer ----

JobJournal::JobJournal(JobJournal &&o) noexcept { *this = std::move(o); }

JobJournal &JobJournal::operator=(JobJournal &&o) noexcept {
    if (this == &o) return *this;
    close_fd();
    dir_ = std::move(o.dir_);
    path_ = std::move(o.path_);
    header_ = std::move(o.header_);
    fd_ = std::exchange(o.fd_, -1);
    length_ = o.length_;
    unsynced_ = o.unsynced_;
    broken_ = o.broken_;
    finished_ = std::exchange(o.finished_, true);
    committed_ = o.committed_;
    open_steps_ = std::move(o.open_steps_);
    crash_ = std::move(o.crash_);
    return *this;
}

JobJournal::~JobJournal() {
    if (fd_ >= 0 && !finished_) VS_INFO("job journal '%s' left for recovery", path_.c_str());
    close_fd();
}

void JobJournal::close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

namespace {

// Parses VIRTSNAP_TEST_CRASH_AT; a malformed value is ignored with a warning.
template <typename CrashPoint>
std::optional<CrashPoint> crash_point_from_env() {
    const char *env = std::getenv("VIRTSNAP_TEST_CRASH_AT");
    if (!env || !*env) return std::nullopt;
    std::string_view spec(env);
    CrashPoint cp;
    if (auto hash = spec.find('#'); hash != std::string_view::npos) {
        cp.nth = unsigned(std::strtoul(std::string(spec.substr(hash + 1)).c_str(), nullptr, 10));
        spec = spec.substr(0, hash);
    }
    cp.kind = kIntent;
    if (auto colon = spec.find(':'); colon != std::string_view::npos) {
        std::string_view k = spec.substr(colon + 1);
        if (k == "done") cp.kind = kDone;
        else if (k != "intent") cp.kind = 0;
        spec = spec.substr(0, colon);
    } else if (spec == "begin") {
        cp.kind = kBegin;
    } else if (spec == "commit") {
        cp.kind = kCommit;
    } else if (spec == "end") {
        cp.kind = kEnd;
    }
    if (cp.kind == 0 || cp.nth == 0 || spec.empty()) {
        VS_WARN("ignoring malformed VIRTSNAP_TEST_CRASH_AT='%s'", env);
        return std::nullopt;
    }
    if (cp.kind == kIntent || cp.kind == kDone) cp.name = std::string(spec);
    return cp;
}

}  // namespace

void test_crash_point(std::string_view point) {
    const char *env = std::getenv("VIRTSNAP_TEST_CRASH_AT");
    if (!env || point != env) return;
    std::fprintf(stderr, "VIRTSNAP_TEST_CRASH_AT: exiting at %s\n", env);
    ::_exit(137);
}

Result<JobJournal> JobJournal::create(const std::string &dir, JournalHeader header) {
    if (!valid_step_name(header.operation))
        return fail(VIR_ERR_INVALID_ARG, kDomain, "invalid job journal operation '" + header.operation + "'");
    auto uuid = Uuid::parse(header.domain_uuid);
    if (!uuid) return fail(VIR_ERR_INVALID_ARG, kDomain, "invalid domain UUID '" + header.domain_uuid + "'");
    header.domain_uuid = uuid->str();
    if (header.job_id.empty()) header.job_id = generate_job_id();
    if (!valid_job_id(header.job_id))
        return fail(VIR_ERR_INVALID_ARG, kDomain, "invalid job journal id '" + header.job_id + "'");

    TRY(file::make_dirs(dir, 0700, kDomain));
    JobJournal j;
    j.dir_ = dir;
    j.path_ = TRY(file::child_path(dir, header.domain_uuid + "." + header.job_id, kSuffix, kDomain));
    j.header_ = std::move(header);
    j.crash_ = crash_point_from_env<CrashPoint>();
    j.fd_ = ::open(j.path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (j.fd_ < 0) return fail(make_system_error(kDomain, errno, "cannot create job journal '" + j.path_ + "'"));
    // Until the begin record is durable the job has done nothing: a failure
    // removes the file, a crash leaves one that recovery drops (began=false).
    ScopeExit drop([&] {
        j.close_fd();
        ::unlink(j.path_.c_str());
    });
    TRY(write_all(j.fd_, kMagic, 0, j.path_));
    j.length_ = kMagic.size();
    TRY(file::sync_dir(dir, kDomain));
    TRY(j.append(encode(kBegin, j.header_.operation, j.header_.fields, &j.header_), true, kBegin,
                 j.header_.operation));
    drop.release();
    VS_DEBUG("job journal '%s' begins %s", j.path_.c_str(), j.header_.operation.c_str());
    return j;
}

Result<JobJournal> JobJournal::resume(const JournalState &state) {
    if (!state.began || state.outcome)
        return fail(VIR_ERR_OPERATION_INVALID, kDomain, "job journal '" + state.path + "' has no job to resume");
    JobJournal j;
    j.dir_ = file::dirname(state.path);
    j.path_ = state.path;
    j.header_ = state.header;
    j.committed_ = state.committed;
    for (const auto &s : state.steps)
        if (!s.done) j.open_steps_.push_back(s.name);
    j.crash_ = crash_point_from_env<CrashPoint>();
    j.fd_ = ::open(j.path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (j.fd_ < 0) return fail(make_system_error(kDomain, errno, "cannot open job journal '" + j.path_ + "'"));
    struct stat st;
    if (::fstat(j.fd_, &st) < 0)
        return fail(make_system_error(kDomain, errno, "cannot stat job journal '" + j.path_ + "'"));
    if (uint64_t(st.st_size) != state.file_length)
        return fail(VIR_ERR_OPERATION_INVALID, kDomain, "job journal '" + j.path_ + "' changed since it was read");
    if (state.valid_length != state.file_length) {
        if (::ftruncate(j.fd_, off_t(state.valid_length)) < 0)
            return fail(make_system_error(kDomain, errno, "cannot truncate job journal '" + j.path_ + "'"));
        TRY(datasync(j.fd_, j.path_));
        VS_INFO("job journal '%s': cut torn tail of %" PRIu64 " bytes", j.path_.c_str(),
                state.file_length - state.valid_length);
    }
    j.length_ = state.valid_length;
    return j;
}

Status JobJournal::append(std::string payload, bool sync, int kind, std::string_view name) {
    if (finished_ || fd_ < 0)
        return fail(VIR_ERR_OPERATION_INVALID, kDomain, "job journal '" + path_ + "' is already finished");
    if (broken_)
        return fail(VIR_ERR_OPERATION_INVALID, kDomain,
                    "job journal '" + path_ + "' cannot be written after an earlier failure");
    // Keep at most one record that is not durable, and make it the last one,
    // so a crash can only ever tear the tail.
    if (unsynced_ && !sync) {
        if (Status st = datasync(fd_, path_); !st) {
            broken_ = true;
            return st;
        }
        unsynced_ = false;
    }
    std::string rec = frame(payload);
    if (Status st = write_all(fd_, rec, length_, path_); !st) {
        broken_ = true;
        if (::ftruncate(fd_, off_t(length_)) < 0) { /* the reader treats what is left as a torn tail */ }
        return st;
    }
    length_ += rec.size();
    bool crash = crash_ && crash_->kind == kind && (crash_->name.empty() || crash_->name == name) &&
                 ++crash_->seen == crash_->nth;
    if (sync || crash) {
        if (Status st = datasync(fd_, path_); !st) {
            // After a failed fdatasync the kernel may have dropped the dirty
            // pages: nothing written so far can be trusted to be durable.
            broken_ = true;
            return st;
        }
        unsynced_ = false;
    } else {
        unsynced_ = true;
    }
    VS_DEBUG("job journal '%s': %s %.*s%s", path_.c_str(), kind_name(kind), int(name.size()), name.data(),
             sync ? " (synced)" : "");
    if (crash) {
        std::fprintf(stderr, "VIRTSNAP_TEST_CRASH_AT: exiting after %s %.*s in '%s'\n", kind_name(kind),
                     int(name.size()), name.data(), path_.c_str());
        ::_exit(137);
    }
    return ok();
}

Status JobJournal::intent(std::string_view step, const JournalFields &fields) {
    if (!valid_step_name(step))
        return fail(VIR_ERR_INVALID_ARG, kDomain, "invalid job journal step name '" + std::string(step) + "'");
    TRY(append(encode(kIntent, step, fields), true, kIntent, step));
    open_steps_.emplace_back(step);
    return ok();
}

Status JobJournal::done(std::string_view step, const JournalFields &fields) {
    auto it = std::find(open_steps_.rbegin(), open_steps_.rend(), step);
    if (it == open_steps_.rend())
        return fail(VIR_ERR_OPERATION_INVALID, kDomain,
                    "job journal '" + path_ + "' has no open intent of step '" + std::string(step) + "'");
    TRY(append(encode(kDone, step, fields), false, kDone, step));
    open_steps_.erase(std::next(it).base());
    return ok();
}

Status JobJournal::commit(const JournalFields &fields) {
    if (committed_)
        return fail(VIR_ERR_OPERATION_INVALID, kDomain, "job journal '" + path_ + "' is already committed");
    TRY(append(encode(kCommit, "", fields), true, kCommit, "commit"));
    committed_ = true;
    return ok();
}

Status JobJournal::finish(std::string_view outcome) {
    if (!valid_step_name(outcome))
        return fail(VIR_ERR_INVALID_ARG, kDomain, "invalid job journal outcome '" + std::string(outcome) + "'");
    if (finished_ || fd_ < 0)
        return fail(VIR_ERR_OPERATION_INVALID, kDomain, "job journal '" + path_ + "' is already finished");
    // Metadata the job wrote with deferred durability must reach the disk
    // before the journal that lets recovery redo it goes.
    TRY(DeferredSync::instance().flush());
    // A broken journal cannot take the end record; the job is settled all the
    // same, so the file goes.
    if (!broken_) TRY(append(encode(kEnd, outcome, {}), true, kEnd, "end"));
    close_fd();
    finished_ = true;
    TRY(file::remove(path_, kDomain));
    TRY(file::sync_dir(dir_, kDomain));
    VS_DEBUG("job journal '%s' ended: %.*s", path_.c_str(), int(outcome.size()), outcome.data());
    return ok();
}

// ---- reader ----

Result<JournalState> JobJournal::read(const std::string &path) {
    std::string data = TRY(file::read(path, kMaxFile, kDomain));
    std::string_view b(data);
    JournalState st;
    st.path = path;
    st.file_length = b.size();

    auto torn_at = [&](uint64_t off, const char *why) {
        st.torn_tail = true;
        VS_WARN("job journal '%s': ignoring torn tail of %" PRIu64 " bytes at offset %" PRIu64 " (%s)", path.c_str(),
                uint64_t(b.size()) - off, off, why);
    };

    if (b.size() < kMagic.size()) {
        // Crash while create() wrote the magic: nothing was done.
        if (b != kMagic.substr(0, b.size()) && !all_zero(b)) return fail(corrupt(path, 0, "not a job journal"));
        if (!b.empty()) torn_at(0, "partial file header");
        return st;
    }
    if (b.substr(0, kMagic.size()) != kMagic) return fail(corrupt(path, 0, "not a job journal (bad magic)"));

    std::vector<size_t> open;
    size_t off = kMagic.size();
    unsigned index = 0;
    while (off < b.size()) {
        std::string_view rest = b.substr(off);
        // A crash during an append leaves a prefix of the record, or, after a
        // power loss on some file systems, zeros: both only at the end.
        if (rest.size() < kHeaderSize) {
            torn_at(off, "partial record header");
            break;
        }
        uint32_t len = get_u32(rest, 0);
        uint32_t crc = get_u32(rest, 4);
        if (crc32c(rest.substr(0, 8)) != get_u32(rest, 8)) {
            if (all_zero(rest)) {
                torn_at(off, "zero-filled");
                break;
            }
            return fail(corrupt(path, off, "record " + std::to_string(index) + " header checksum mismatch"));
        }
        if (len == 0 || len > kMaxPayload)
            return fail(corrupt(path, off, "record " + std::to_string(index) + " has bad length " + std::to_string(len)));
        if (rest.size() - kHeaderSize < len) {
            torn_at(off, "partial record");
            break;
        }
        std::string_view payload = rest.substr(kHeaderSize, len);
        if (crc32c(payload) != crc) {
            if (all_zero(rest.substr(kHeaderSize + len))) {
                torn_at(off, "last record checksum mismatch");
                break;
            }
            return fail(corrupt(path, off, "record " + std::to_string(index) + " checksum mismatch"));
        }
        auto rec = decode(payload);
        if (!rec) return fail(corrupt(path, off, "record " + std::to_string(index) + " cannot be decoded"));
        if (auto why = apply(st, *rec, open))
            return fail(corrupt(path, off, "record " + std::to_string(index) + ": " + *why));
        off += kHeaderSize + len;
        index++;
    }
    st.valid_length = off;
    if (st.began) {
        std::string expect = st.id() + std::string(kSuffix);
        if (file::basename(path) != expect)
            return fail(VIR_ERR_INTERNAL_ERROR, kDomain,
                        "job journal '" + path + "' belongs to job '" + st.id() + "': file name does not match");
    }
    return st;
}

Result<JournalScan> JobJournal::scan(const std::string &dir) {
    JournalScan out;
    auto names = TRY(file::list_dir(dir, kDomain));
    for (const auto &name : names) {
        if (name.size() <= kSuffix.size() || !std::string_view(name).ends_with(kSuffix)) continue;
        std::string path = dir + "/" + name;
        auto st = read(path);
        if (st) out.journals.push_back(std::move(st).value());
        else out.damaged.emplace_back(path, std::move(st).error());
    }
    return out;
}

// ---- recovery dispatch ----

void JournalRecovery::add(std::string operation, Handler handler) {
    handlers_.insert_or_assign(std::move(operation), std::move(handler));
}

namespace {

Status remove_journal(const std::string &path) {
    TRY(file::remove(path, kDomain));
    return file::sync_dir(file::dirname(path), kDomain);
}

}  // namespace

Status JournalRecovery::recover(const JournalState &state) const {
    if (!state.began || state.outcome) {
        // Never begun (nothing was done) or already ended (all was done).
        VS_INFO("removing %s job journal '%s'", state.began ? "ended" : "empty", state.path.c_str());
        return remove_journal(state.path);
    }
    auto it = handlers_.find(state.header.operation);
    if (it == handlers_.end())
        return fail(VIR_ERR_INTERNAL_ERROR, kDomain,
                    "no recovery for job operation '" + state.header.operation + "' of job journal '" + state.path +
                        "'");
    JobJournal journal = TRY(JobJournal::resume(state));
    VS_INFO("recovering %s job '%s' (%s)", state.header.operation.c_str(), state.id().c_str(),
            state.committed ? "committed: rolling forward" : "not committed: rolling back");
    TRY(it->second(journal, state));
    if (!journal.finished()) TRY(journal.finish("recovered"));
    return ok();
}

Result<JournalRecovery::Report> JournalRecovery::run(const std::string &dir) const {
    Report report;
    JournalScan scan = TRY(JobJournal::scan(dir));
    for (auto &[path, err] : scan.damaged) {
        VS_ERROR("%s", err.message().c_str());
        report.failed.emplace_back(path, std::move(err));
    }
    for (const auto &state : scan.journals) {
        bool handled = state.began && !state.outcome;
        if (Status st = recover(state); !st) {
            VS_ERROR("recovery of job journal '%s' failed: %s", state.path.c_str(), st.error().message().c_str());
            report.failed.emplace_back(state.path, std::move(st).error());
        } else if (handled) {
            report.recovered++;
        } else {
            report.cleaned++;
        }
    }
    return report;
}

}  // namespace virtsnap
