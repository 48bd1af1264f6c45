// backup_store.hh - the storage a backup disk writes to: a push <target> or
// a pull <scratch>, with its format, security labels and encryption.
//
// libvirt parses these with its generic storage-source code
// (virDomainStorageSourceParse / virDomainDiskSourceFormat) restricted to the
// file and block types; this is that subset, with libvirt's normalisation of
// <seclabel> and <encryption> on output and its error wording.
#pragma once

#include "conf/domain_def.hh"
#include "util/result.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <optional>
#include <string>
#include <vector>

namespace virtsnap::conf {

enum class BackupTristate { Absent = 0, Yes, No };

// <seclabel> of a target/scratch (virSecurityDeviceLabelDef).
struct BackupSeclabel {
    std::optional<std::string> model;
    bool relabel = true;
    bool labelskip = false;             // status XML only
    std::optional<std::string> label;
};

// <encryption> of a target/scratch (virStorageEncryption, the parts the
// backup schema allows).
struct BackupEncryptionSecret {
    std::string type;                   // passphrase
    std::optional<std::string> uuid, usage;
};
struct BackupEncryption {
    std::string format;                 // luks, qcow
    std::optional<std::string> engine;  // qemu, librbd
    std::vector<BackupEncryptionSecret> secrets;
    std::optional<std::string> cipher_name, cipher_size, cipher_mode, cipher_hash;
    bool has_cipher = false;
    std::optional<std::string> ivgen_name, ivgen_hash;
    bool has_ivgen = false;
};

// Where a disk's backup goes (push <target>) or its scratch lives (pull <scratch>).
struct BackupStore {
    StorageSource::Type type = StorageSource::Type::File;  // file or block
    std::string path;                   // "" = none given
    std::string format;                 // <driver type=>, "" = none
    unsigned index = 0;                 // status XML index=, 0 = none
    std::vector<BackupSeclabel> seclabels;
    std::optional<BackupEncryption> encryption;
};

// Parses the <disk type= index=> base and <driver type=> (virDomainStorageSourceParseBase):
// `type`/`format`/`index` are the raw attribute values, nullopt when absent.
[[nodiscard]] Result<BackupStore> backup_store_parse_base(const std::optional<std::string> &type,
                                                          const std::optional<std::string> &format,
                                                          const std::optional<std::string> &index);
// Fills path, seclabels and encryption from a <target>/<scratch> element.
// `status` accepts status-only data (labelskip).
[[nodiscard]] Status backup_store_parse_source(BackupStore &store, xml::Node node, bool status);
// Writes <element file|dev=...> with its children; nothing when it would be empty.
void backup_store_format_source(xml::Writer &w, const BackupStore &store, std::string_view element);

// A tristate yes/no attribute as virXMLPropTristateBool (errors from VIR_FROM_XML).
[[nodiscard]] Result<BackupTristate> parse_tristate_attr(xml::Node node, const char *attr);

}  // namespace virtsnap::conf
