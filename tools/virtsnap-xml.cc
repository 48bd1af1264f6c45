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
// --internal   parse and print the internal form: a snapshot's internal format
//              (<active>, full <domain> ...), a checkpoint's metadata file
//              exactly as virtsnapd writes it (the leading comment, then the
//              SECURE format; read back as a redefinition), a backup's status
// --domain F   align disks against the domain in F (snapshot, checkpoint, backup);
//              a redefined checkpoint must carry F's uuid, as virtsnapd requires
// --validate   validate the input against libvirt's RNG schema first (domain,
//              snapshot). Checkpoint and public backup documents are always
//              validated, as libvirt always does; the internal backup status
//              form has no schema, so --validate refuses it.
//
// A snapshot without a full <domain> prints the <domain><uuid> block with the
// uuid of --domain, else with the uuid of the document's own legacy
// <domain><uuid>, as virtsnapd would for the domain owning it.

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
        // The metadata file is a redefinition in the internal format.
        unsigned flags = (a.internal ? conf::kSnapshotParseRedefine | conf::kSnapshotParseInternal : 0u) |
                         (a.redefine ? conf::kSnapshotParseRedefine : 0u) |
                         (a.validate ? conf::kSnapshotParseValidate : 0u);
        auto def = TRY(conf::SnapshotDef::parse_string(text, flags));
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
        } else if (def->legacy_domain_uuid) {
            uuid = def->legacy_domain_uuid;
        }
        unsigned fmt = conf::kSnapshotFormatSecure;
        if (a.internal) fmt |= conf::kSnapshotFormatInternal | (def->current ? conf::kSnapshotFormatCurrent : 0u);
        return def->format(uuid, fmt);
    }
    if (a.kind == "checkpoint") {
        const bool redefine = a.redefine || a.internal;
        unsigned flags = redefine ? conf::kCheckpointParseRedefine : 0u;
        auto def = TRY(a.internal ? conf::CheckpointDef::parse_metadata_file(text)
                                  : conf::CheckpointDef::parse_string(text, flags));
        if (domain && redefine) {
            // As CheckpointList::redefine: the embedded domain must be F's, disks align against it.
            if (!def->dom || !(def->dom->uuid == domain->uuid))
                return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_CHECKPOINT,
                            "definition for checkpoint " + def->name.value_or("") + " must use uuid " +
                                domain->uuid.str());
            TRY(def->align_disks());
        } else if (domain) {
            def->dom = std::move(domain);
            TRY(def->align_disks());
        }
        if (a.internal) return def->format_metadata_file();
        unsigned fmt = conf::kCheckpointFormatSecure | (def->dom ? 0u : conf::kCheckpointFormatNoDomain);
        return def->format(fmt);
    }
    if (a.kind == "backup") {
        if (a.internal && a.validate)
            return fail(VIR_ERR_INVALID_ARG, VIR_FROM_NONE,
                        "--validate: libvirt's schema does not describe the internal backup status form");
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
