// virtsnap-xml.cc - the conf layer on the command line.
//
//   virtsnap-xml {domain|snapshot|checkpoint|backup} [--redefine] [--internal]
//                [--domain FILE] [--validate] FILE
//
// Prints the canonical XML exactly as virtsnapd would return it, or the
// libvirt-style error ("error: <message>", plus the code and domain numbers)
// with exit status 1. FILE may be "-" for standard input.
//
// --redefine   parse as a redefinition (snapshot, checkpoint)
// --internal   parse and print the internal form (snapshot metadata file, backup status)
// --domain F   align disks against the domain in F (snapshot, checkpoint, backup)
// --validate   validate the input against libvirt's RNG schema first

#include "conf/backup_def.hh"
#include "conf/checkpoint_def.hh"
#include "conf/domain_def.hh"
#include "conf/snapshot_align.hh"
#include "conf/snapshot_def.hh"
#include "util/file.hh"

#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

using namespace virtsnap;

namespace {

struct Args {
    std::string kind, file, domain_file;
    bool redefine = false, internal = false, validate = false;
};

int usage() {
    std::fprintf(stderr,
                 "usage: virtsnap-xml {domain|snapshot|checkpoint|backup} [--redefine] [--internal]\n"
                 "                    [--domain FILE] [--validate] FILE\n");
    return 2;
}

int report(const Error &e) {
    std::fprintf(stderr, "error: %s\n", e.message().c_str());
    std::fprintf(stderr, "error: code %d, domain %d\n", int(e.code), int(e.domain));
    return 1;
}

Result<std::string> read_input(const std::string &path) {
    if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
    return file::read(path, 10 * 1024 * 1024);
}

Result<std::string> run(const Args &a) {
    std::string text = TRY(read_input(a.file));
    std::unique_ptr<conf::DomainDef> domain;
    if (!a.domain_file.empty()) {
        std::string dtext = TRY(file::read(a.domain_file, 10 * 1024 * 1024));
        domain = TRY(conf::DomainDef::parse_string(dtext, conf::kDomainParseInactive));
    }

    if (a.kind == "domain") {
        unsigned flags = conf::kDomainParseInactive | (a.validate ? conf::kDomainParseValidate : 0u);
        auto def = TRY(conf::DomainDef::parse_string(text, flags));
        return def->format_string(conf::kDomainFormatInactive | conf::kDomainFormatSecure);
    }
    if (a.kind == "snapshot") {
        std::unique_ptr<conf::SnapshotDef> def;
        if (a.internal) {
            def = TRY(conf::snapshot_parse_metadata_file(text));
        } else {
            unsigned flags = (a.redefine ? conf::kSnapshotParseRedefine : 0u) |
                             (a.validate ? conf::kSnapshotParseValidate : 0u);
            def = TRY(conf::SnapshotDef::parse_string(text, flags));
        }
        std::optional<Uuid> uuid;
        if (domain) {
            uuid = domain->uuid;
            if (a.redefine || a.internal) {
                TRY(conf::snapshot_align_disks(*def, domain.get(), conf::snapshot_redefine_align_location(*def), true));
            } else {
                // As a create on a shut-off domain would align it.
                TRY(conf::snapshot_create_align(*def, domain->clone(), nullptr, 0, false,
                                                conf::SnapshotState::Shutoff));
            }
        } else if (def->domain) {
            uuid = def->domain->uuid;
        }
        unsigned fmt = conf::kSnapshotFormatSecure;
        if (a.internal) fmt |= conf::kSnapshotFormatInternal | (def->current ? conf::kSnapshotFormatCurrent : 0u);
        return def->format(uuid, fmt);
    }
    if (a.kind == "checkpoint") {
        unsigned flags = a.redefine ? conf::kCheckpointParseRedefine : 0u;
        auto def = TRY(conf::CheckpointDef::parse_string(text, flags));
        if (domain) {
            def->dom = std::move(domain);
            TRY(def->align_disks());
        }
        unsigned fmt = conf::kCheckpointFormatSecure | (def->dom ? 0u : conf::kCheckpointFormatNoDomain);
        return def->format(fmt);
    }
    if (a.kind == "backup") {
        auto def = TRY(conf::BackupDef::parse_string(text, a.internal ? conf::kBackupParseInternal : 0u));
        if (domain) TRY(def->align_disks(*domain, "backup"));
        return def->format(a.internal);
    }
    return fail(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unknown document kind '" + a.kind + "'");
}

}  // namespace

int main(int argc, char **argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        if (s == "--redefine") a.redefine = true;
        else if (s == "--internal") a.internal = true;
        else if (s == "--validate") a.validate = true;
        else if (s == "--domain" && i + 1 < argc) a.domain_file = argv[++i];
        else if (s == "--help" || s == "-h") return usage();
        else if (a.kind.empty()) a.kind = s;
        else if (a.file.empty()) a.file = s;
        else return usage();
    }
    if (a.kind.empty() || a.file.empty()) return usage();
    auto out = run(a);
    if (!out) return report(out.error());
    std::fwrite(out->data(), 1, out->size(), stdout);
    return 0;
}
