// fuzz_backup_xml.cc - libFuzzer target for the <domainbackup> parser.
//
// The first input byte picks public or internal (status XML) parsing; the rest
// is the document. Whatever parses must format, re-parse and format
// identically, as the status XML a running backup is saved in would otherwise
// change across a daemon restart: abort(). Schema validation is skipped so the
// fuzzer exercises our parser rather than libxml2's RelaxNG engine.

#include "conf/backup_def.hh"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace virtsnap::conf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool internal = data[0] & 1;
    std::string_view text(reinterpret_cast<const char *>(data + 1), size - 1);
    unsigned flags = kBackupParseSkipValidate | (internal ? unsigned(kBackupParseInternal) : 0u);
    auto def = BackupDef::parse_string(text, flags);
    if (!def) return 0;
    // As libvirt, status XML requires a state on every backed-up disk but accepts
    // state='' (the "none" state) and then formats no state at all, so such a
    // document cannot round-trip; libvirt never writes one (a running backup
    // sets every disk's state).
    if (internal)
        for (const auto &disk : (*def)->disks)
            if (disk.backup == BackupTristate::Yes && disk.state == BackupDiskState::None) return 0;
    std::string first = (*def)->format(internal);
    auto again = BackupDef::parse_string(first, flags);
    if (!again) abort();
    if ((*again)->format(internal) != first) abort();
    return 0;
}
