// snapshot_index.cc - text form of the snapshot start-up cache.

#include "conf/snapshot_index.hh"

#include <charconv>

namespace virtsnap::conf {

namespace {

constexpr std::string_view kHeader = "virtsnap-snapshot-index 1";
constexpr size_t kFields = 13;

void put_escaped(std::string &out, std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned char c : s) {
        if (c == '%' || c < 0x20 || c == 0x7f) {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += char(c);
        }
    }
}

std::optional<std::string> unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
        out += char(v);
        i += 2;
    }
    return out;
}

template <typename T>
bool number(std::string_view s, T &v) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool flag(std::string_view s, bool &v) {
    if (s == "0" || s == "1") {
        v = s == "1";
        return true;
    }
    return false;
}

}  // namespace

void SnapshotIndex::add(SnapshotIndexRecord record) {
    auto [it, inserted] = by_file_.try_emplace(record.file, records_.size());
    if (inserted) records_.push_back(std::move(record));
    else records_[it->second] = std::move(record);
}

const SnapshotSummary *SnapshotIndex::find(const std::string &file, const file::FileStamp &stamp) const {
    auto it = by_file_.find(file);
    if (it == by_file_.end()) return nullptr;
    const SnapshotIndexRecord &r = records_[it->second];
    return r.stamp == stamp ? &r.summary : nullptr;
}

std::string SnapshotIndex::format() const {
    std::string out(kHeader);
    out += '\n';
    out.reserve(records_.size() * 96);
    for (const SnapshotIndexRecord &r : records_) {
        const SnapshotSummary &s = r.summary;
        put_escaped(out, r.file);
        for (uint64_t v : {r.stamp.dev, r.stamp.ino, r.stamp.size}) out += '\t' + std::to_string(v);
        for (int64_t v : {r.stamp.mtime_ns, r.stamp.ctime_ns}) out += '\t' + std::to_string(v);
        out += '\t';
        put_escaped(out, s.name);
        out += '\t';
        put_escaped(out, s.parent);
        out += s.claims_current ? "\t1" : "\t0";
        out += s.creation_time ? "\t1\t" + std::to_string(*s.creation_time) : std::string("\t0\t0");
        out += '\t' + std::to_string(int(s.state_class));
        out += s.external ? "\t1\n" : "\t0\n";
    }
    return out;
}

std::optional<SnapshotIndex> SnapshotIndex::parse(std::string_view text) {
    if (text.substr(0, kHeader.size()) != kHeader || text.size() == kHeader.size() ||
        text[kHeader.size()] != '\n')
        return std::nullopt;
    text.remove_prefix(kHeader.size() + 1);
    SnapshotIndex index;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        if (nl == std::string_view::npos) return std::nullopt;  // a torn last line: distrust the whole file
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        std::string_view f[kFields];
        size_t n = 0;
        while (n < kFields) {
            size_t tab = line.find('\t');
            f[n++] = line.substr(0, tab);
            if (tab == std::string_view::npos) break;
            line.remove_prefix(tab + 1);
        }
        if (n != kFields || line.find('\t') != std::string_view::npos) return std::nullopt;
        SnapshotIndexRecord r;
        auto file = unescape(f[0]), name = unescape(f[6]), parent = unescape(f[7]);
        if (!file || !name || !parent || name->empty()) return std::nullopt;
        r.file = std::move(*file);
        r.summary.name = std::move(*name);
        r.summary.parent = std::move(*parent);
        bool has_time = false;
        int64_t ctime = 0;
        int state = 0;
        if (!number(f[1], r.stamp.dev) || !number(f[2], r.stamp.ino) || !number(f[3], r.stamp.size) ||
            !number(f[4], r.stamp.mtime_ns) || !number(f[5], r.stamp.ctime_ns) ||
            !flag(f[8], r.summary.claims_current) || !flag(f[9], has_time) || !number(f[10], ctime) ||
            !number(f[11], state) || state < 0 || state > 2 || !flag(f[12], r.summary.external))
            return std::nullopt;
        if (has_time) r.summary.creation_time = ctime;
        r.summary.state_class = SnapshotStateClass(state);
        index.add(std::move(r));
    }
    return index;
}

}  // namespace virtsnap::conf
