// checkpoint_def.hh - the libvirt <domaincheckpoint> definition.
//
// A checkpoint names, per disk, a dirty bitmap started at the checkpoint's
// creation; incremental backups read "what changed since checkpoint X" from it.
// Parsing, formatting, disk alignment and the metadata file follow libvirt
// 9.0's checkpoint_conf.c, so output is byte-identical and errors carry the
// same codes and wording (VIR_FROM_DOMAIN_CHECKPOINT).
#pragma once

#include "conf/domain_def.hh"
#include "util/result.hh"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::conf {

// libvirt's VIR_DOMAIN_CHECKPOINT_PARSE_* (only REDEFINE exists in 9.0), plus
// one flag of ours.
enum CheckpointParseFlags : unsigned {
    kCheckpointParseRedefine = 1u << 0,
    // Skips the domaincheckpoint.rng validation libvirt always performs. Only
    // for input we wrote ourselves or fuzzing; the parser still refuses what
    // it cannot represent.
    kCheckpointParseSkipValidate = 1u << 16,
};

// libvirt's VIR_DOMAIN_CHECKPOINT_FORMAT_*.
enum CheckpointFormatFlags : unsigned {
    kCheckpointFormatSecure = 1u << 0,
    kCheckpointFormatNoDomain = 1u << 1,
    kCheckpointFormatSize = 1u << 2,
};

// Maps public VIR_DOMAIN_CHECKPOINT_XML_* flags to format flags, ignoring others.
unsigned checkpoint_format_flags_from_xml_flags(unsigned xml_flags);

// virDomainCheckpointType; the numeric values are libvirt's.
enum class CheckpointDiskType { Default = 0, None = 1, Bitmap = 2 };

struct CheckpointDiskDef {
    std::string name;                   // target dev after alignment
    CheckpointDiskType type = CheckpointDiskType::Default;
    std::optional<std::string> bitmap;  // bitmap name (type bitmap)
    std::optional<uint64_t> size;       // bytes, filled by the QEMU layer for FORMAT_SIZE
};

class CheckpointDef;

// The hook libvirt runs after parsing a new (non-REDEFINE) definition; the
// default stamps the creation time with the clock and names an unnamed
// checkpoint after it (virDomainMomentDefPostParse). Tests replace it.
using CheckpointPostParse = std::function<Status(CheckpointDef &)>;

class CheckpointDef {
public:
    // libvirt keeps NULL apart from set; empty XPath results count as NULL.
    std::optional<std::string> name;
    std::optional<std::string> description;
    std::optional<std::string> parent_name;
    long long creation_time = 0;        // seconds since the epoch, 0 = unset
    std::vector<CheckpointDiskDef> disks;
    std::unique_ptr<DomainDef> dom;     // the domain as it was at creation

    CheckpointDef() = default;
    CheckpointDef(const CheckpointDef &o);
    CheckpointDef &operator=(const CheckpointDef &o);
    CheckpointDef(CheckpointDef &&) = default;
    CheckpointDef &operator=(CheckpointDef &&) = default;

    // virDomainCheckpointDefParseString. `post_parse` replaces the default hook.
    [[nodiscard]] static Result<std::unique_ptr<CheckpointDef>> parse_string(
        std::string_view xml, unsigned flags, const CheckpointPostParse &post_parse = {});

    // virDomainMomentDefPostParse: creation time now, default name.
    static Status default_post_parse(CheckpointDef &def);

    // virDomainCheckpointAlignDisks: one entry per domain disk in domain order,
    // paths turned into target names, defaults filled in (bitmap on every
    // writable disk when no <disks> was given, bitmap name = checkpoint name).
    [[nodiscard]] Status align_disks();
    // Defaults bitmap names of bitmap disks to the checkpoint name.
    void assign_bitmap_names();

    // virDomainCheckpointDefFormat.
    std::string format(unsigned flags) const;
    void format(xml::Writer &w, unsigned flags) const;

    // The metadata file libvirt's QEMU driver keeps per checkpoint
    // (<checkpointDir>/<domain>/<name>.xml): the auto-generated-file warning
    // naming `virsh checkpoint-edit`, then the SECURE format.
    std::string format_metadata_file() const;
    // Reads such a file back (REDEFINE parse, as libvirt's loader does).
    [[nodiscard]] static Result<std::unique_ptr<CheckpointDef>> parse_metadata_file(std::string_view text);
};


}  // namespace virtsnap::conf
