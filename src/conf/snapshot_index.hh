// snapshot_index.hh - the start-up cache of one domain's snapshot metadata.
//
// The metadata files stay the only truth (libvirt's layout, libvirt's
// loader semantics). Parsing them is what makes start-up slow at scale: a
// full libxml2 parse plus the embedded <domain> costs ~90 us per snapshot,
// 0.9 s for 10,000. What building the tree and answering listings needs from
// a file is a handful of fields, so the index keeps exactly those per file,
// keyed by the file's stamp (inode, size, mtime, ctime). At start-up a file
// whose stamp matches its record is not read at all; its definition is parsed
// the first time something needs it. Any other file - new, rewritten,
// renamed over, touched - is parsed as libvirt would, so a stale or missing
// index only costs time, never correctness: a record can only describe the
// exact version of a file that was once parsed (or written) successfully.
//
// File format (text, one record per line, fields separated by tabs, with '%',
// tab, CR, LF and other control bytes percent-encoded):
//   virtsnap-snapshot-index 1
//   <file> <dev> <ino> <size> <mtime_ns> <ctime_ns> <name> <parent>
//          <claims_current 0|1> <has_creation_time 0|1> <creation_time>
//          <state_class 0 inactive|1 active|2 disk-only> <external 0|1>
// A file that does not parse as a whole is ignored (and rewritten).
#pragma once

#include "conf/moment_tree.hh"
#include "util/file.hh"
#include "util/result.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace virtsnap::conf {

// What the list needs from one metadata file, without its definition.
struct SnapshotSummary {
    std::string name;
    std::string parent;                   // as the file says; "" for a root
    bool claims_current = false;          // <active>1</active>
    std::optional<int64_t> creation_time;
    SnapshotStateClass state_class = SnapshotStateClass::Active;
    bool external = false;
};

struct SnapshotIndexRecord {
    std::string file;        // directory entry, e.g. "s1.xml"
    file::FileStamp stamp;
    SnapshotSummary summary;
};

class SnapshotIndex {
public:
    // Parses an index; std::nullopt when it is not one this code wrote.
    static std::optional<SnapshotIndex> parse(std::string_view text);
    std::string format() const;

    void add(SnapshotIndexRecord record);
    // The record of `file` when its stamp is exactly `stamp`.
    const SnapshotSummary *find(const std::string &file, const file::FileStamp &stamp) const;
    size_t size() const { return records_.size(); }
    const std::vector<SnapshotIndexRecord> &records() const { return records_; }

private:
    std::vector<SnapshotIndexRecord> records_;
    std::unordered_map<std::string, size_t> by_file_;
};

}  // namespace virtsnap::conf
