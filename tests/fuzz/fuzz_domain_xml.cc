// fuzz_domain_xml.cc - libFuzzer target for the <domain> parser and formatter.
// Any input that parses must format to a document that parses again, and a
// clone must format identically, in every flag mode (memory errors via ASan).

#include "conf/domain_def.hh"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace virtsnap::conf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    for (unsigned parse_flags : {0u, unsigned(kDomainParseInactive)}) {
        auto def = DomainDef::parse_string(text, parse_flags);
        if (!def) continue;
        for (unsigned format_flags : {unsigned(kDomainFormatSecure), unsigned(kDomainFormatInactive), 0u}) {
            std::string out = (*def)->format_string(format_flags);
            auto again = DomainDef::parse_string(out, parse_flags);
            if (!again) abort();
            // Byte stability of a second round is not asserted: malformed input kept
            // verbatim (e.g. a <uuid> with markup in it) may be read differently once
            // it is written back in libvirt's layout. Tracked as a known gap.
            (void)(*again)->format_string(format_flags);
            if ((*def)->clone()->format_string(format_flags) != out) abort();
        }
    }
    return 0;
}
