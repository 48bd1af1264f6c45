// fuzz_snapshot_xml.cc - libFuzzer target for the <domainsnapshot> parser.
//
// Each input is parsed in every parse mode the daemon uses (create, offline
// create, redefine, metadata file). Whatever parses must format, reparse in the
// same mode and format to the same text; otherwise the target aborts.
//
// The embedded <domain>/<inactiveDomain> belong to the domain parser, which
// has its own target (fuzz_domain_xml): when only they fail to reparse or
// change, this target does not abort; everything else of the snapshot still
// has to be identical.
//
// One libvirt-faithful exception: libvirt (and so virtsnap) writes tab, newline
// and carriage return raw, and an XML parser normalises them (in attribute
// values to spaces, CR to LF), so output holding them only has to be stable
// from the second round on.

#include "conf/snapshot_def.hh"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace virtsnap;
using namespace virtsnap::conf;

namespace {

Status pinned_time(SnapshotDef &def) {
    def.creation_time = 1700000000;
    if (def.name.empty()) def.name = "1700000000";
    return ok();
}

// True when the text holds a character the parser normalises (see above).
bool has_normalised_whitespace(const std::string &text) {
    if (text.find('\r') != std::string::npos) return true;
    bool in_tag = false, in_value = false;
    for (char c : text) {
        if (!in_tag) {
            in_tag = c == '<';
            continue;
        }
        if (in_value) {
            if (c == '\'') in_value = false;
            else if (c == '\n' || c == '\t') return true;
        } else if (c == '\'') {
            in_value = true;
        } else if (c == '>') {
            in_tag = false;
        }
    }
    return false;
}

struct Round {
    bool parsed = false;
    bool domain_error = false;    // failed inside the embedded domain parser
    std::string text;             // full output
    std::string without_domains;  // output with the embedded domains left out
};

Round round_trip(std::string_view text, unsigned parse_flags, unsigned format_flags) {
    Round r;
    auto def = SnapshotDef::parse_string(text, parse_flags, pinned_time);
    r.parsed = def.has_value();
    if (!def) {
        r.domain_error = def.error().domain != VIR_FROM_DOMAIN_SNAPSHOT;
        return r;
    }
    unsigned ff = format_flags;
    if ((ff & kSnapshotFormatInternal) && (*def)->current) ff |= kSnapshotFormatCurrent;
    auto copy = *(*def);
    r.text = (*def)->format(Uuid{}, ff);
    if (copy.format(Uuid{}, ff) != r.text) {
        std::fprintf(stderr, "copy formats differently\n");
        std::abort();
    }
    copy.domain.reset();
    copy.inactive_domain.reset();
    r.without_domains = copy.format(Uuid{}, ff);
    return r;
}

void check_mode(std::string_view input, unsigned parse_flags, unsigned format_flags) {
    Round first = round_trip(input, parse_flags, format_flags);
    if (!first.parsed) return;
    Round second = round_trip(first.text, parse_flags, format_flags);
    if (!second.parsed) {
        if (second.domain_error) return;
        // As libvirt: a network disk with a driver but no <source> formats as
        // <source protocol='none'/>, which no parser accepts.
        if (first.text.find("<source protocol='none'") != std::string::npos) return;
        std::fprintf(stderr, "output does not reparse (flags %u):\n%s\n", parse_flags, first.text.c_str());
        std::abort();
    }
    if (first.text == second.text || first.without_domains == second.without_domains) return;
    if (has_normalised_whitespace(first.text)) {
        Round third = round_trip(second.text, parse_flags, format_flags);
        if (third.parsed && third.without_domains == second.without_domains) return;
    }
    std::fprintf(stderr, "unstable output (flags %u):\n--- first\n%s--- second\n%s", parse_flags,
                 first.text.c_str(), second.text.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view input(reinterpret_cast<const char *>(data), size);
    check_mode(input, 0, kSnapshotFormatSecure);
    check_mode(input, kSnapshotParseOffline, kSnapshotFormatSecure);
    check_mode(input, kSnapshotParseRedefine, kSnapshotFormatSecure);
    check_mode(input, kSnapshotParseRedefine | kSnapshotParseInternal,
               kSnapshotFormatSecure | kSnapshotFormatInternal);
    return 0;
}
