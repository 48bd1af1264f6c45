// fuzz_checkpoint_xml.cc - libFuzzer target for the <domaincheckpoint> parser.
//
// The first input byte picks create or REDEFINE parsing; the rest is the
// document. Whatever parses must format, re-parse and format identically,
// otherwise the round trip a metadata file makes would change it: abort().
// Schema validation is skipped so the fuzzer exercises our parser rather than
// libxml2's RelaxNG engine (and the native checks must hold on their own).

#include "conf/checkpoint_def.hh"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace virtsnap::conf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool redefine = data[0] & 1;
    std::string_view text(reinterpret_cast<const char *>(data + 1), size - 1);
    unsigned flags = kCheckpointParseSkipValidate | (redefine ? unsigned(kCheckpointParseRedefine) : 0u);
    // A fixed clock keeps create-mode parses deterministic.
    CheckpointPostParse fixed = [](CheckpointDef &def) -> virtsnap::Status {
        def.creation_time = 1600000000;
        if (!def.name) def.name = "1600000000";
        return virtsnap::ok();
    };
    auto def = CheckpointDef::parse_string(text, flags, fixed);
    if (!def) return 0;
    // libvirt omits <creationTime>0</creationTime> on output yet requires it on
    // REDEFINE input; such a definition cannot round-trip in libvirt either.
    if ((*def)->creation_time == 0) return 0;
    // Embedded domains are the domain parser's business (fuzz_domain_xml).
    unsigned fmt = kCheckpointFormatSecure | kCheckpointFormatSize | kCheckpointFormatNoDomain;
    std::string first = (*def)->format(fmt);
    auto again = CheckpointDef::parse_string(first, kCheckpointParseSkipValidate | kCheckpointParseRedefine);
    if (!again) abort();
    if ((*again)->format(fmt) != first) abort();
    return 0;
}
