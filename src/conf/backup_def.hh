// backup_def.hh - the libvirt <domainbackup> definition.
//
// A backup job copies disks either to targets we write (push mode) or exposes
// them over NBD for a client to read (pull mode, with a scratch file per disk
// holding the copy-before-write data). Incremental backups copy only what
// changed since a checkpoint. Parsing, formatting, the internal status form
// and disk alignment follow libvirt 9.0's backup_conf.c, byte for byte and
// with libvirt's error codes and wording.
#pragma once

#include "conf/backup_store.hh"
#include "conf/domain_def.hh"
#include "util/result.hh"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtsnap::conf {

// libvirt's VIR_DOMAIN_BACKUP_PARSE_* plus one flag of ours.
enum BackupParseFlags : unsigned {
    // Status XML: disk state, index and <privateData>; no schema validation.
    kBackupParseInternal = 1u << 0,
    // Skips the domainbackup.rng validation (input we wrote, fuzzing).
    kBackupParseSkipValidate = 1u << 16,
};

enum class BackupType { Default = 0, Push, Pull };
enum class BackupDiskState { None = 0, Running, Complete, Failed, Cancelling, Cancelled };
enum class BackupDiskMode { Default = 0, Full, Incremental };

std::string_view backup_type_name(BackupType t);
std::string_view backup_disk_state_name(BackupDiskState s);

struct BackupDiskDef {
    std::string name;                   // target dev
    BackupTristate backup = BackupTristate::Absent; // Yes or No after parsing
    BackupDiskMode backupmode = BackupDiskMode::Default;
    std::optional<std::string> incremental;   // checkpoint name
    std::optional<std::string> exportname, exportbitmap;  // pull mode NBD export
    BackupDiskState state = BackupDiskState::None;        // status XML
    std::optional<BackupStore> store;   // present for every disk with backup='yes'
};

// <server> of a pull backup (virStorageNetHostDef).
struct BackupServer {
    std::string transport = "tcp";      // tcp | unix
    std::optional<std::string> name;
    unsigned port = 0;                  // 0 = not given
    std::optional<std::string> socket;
};

class BackupDef {
public:
    BackupType type = BackupType::Push;
    std::optional<std::string> incremental;  // checkpoint the whole backup is relative to
    std::optional<BackupServer> server;
    BackupTristate tls = BackupTristate::Absent;
    std::vector<BackupDiskDef> disks;
    // Status XML <privateData>: aliases of the TLS objects given to QEMU.
    std::optional<std::string> tls_alias, tls_secret_alias;

    // virDomainBackupDefParseString.
    [[nodiscard]] static Result<std::unique_ptr<BackupDef>> parse_string(std::string_view xml, unsigned flags);

    // virDomainBackupDefFormat; `internal` adds the status-only data.
    std::string format(bool internal) const;

    // virDomainBackupAlignDisks: checks the named disks against the domain,
    // appends every other domain disk (backed up only when no disk was named),
    // names missing push targets / pull scratch files "<source path>.<suffix>",
    // and settles each disk's backup mode.
    [[nodiscard]] Status align_disks(const DomainDef &dom, std::string_view suffix);
};

}  // namespace virtsnap::conf
