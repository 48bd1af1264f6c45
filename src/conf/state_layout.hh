// state_layout.hh - where virtsnap keeps every file, laid out like libvirt's
// QEMU driver so metadata written by libvirt 9.x loads unchanged.
//
// Embedded root DIR (`virtsnapd --root DIR`, as libvirt's embedded driver):
//   DIR/etc/qemu/<domain>.xml                  persistent domain configs
//   DIR/etc/qemu/autostart/<domain>.xml        autostart symlinks
//   DIR/lib/qemu/snapshot/<domain>/<name>.xml  snapshot metadata
//   DIR/lib/qemu/checkpoint/<domain>/<name>.xml
//   DIR/lib/qemu/snapshot-index/<domain>.index  virtsnap's cache of the above
//                                              (conf/snapshot_index.hh)
//   DIR/lib/qemu/journal/                      crash-safe job journal
//   DIR/lib/qemu/save/<domain>.save            managed save images
//   DIR/run/qemu/<domain>.{xml,pid,monitor,agent}  runtime status, sockets
//   DIR/log/qemu/<domain>.log
//   DIR/run/virtsnapd-sock, DIR/run/virtsnapd-sock-ro, DIR/run/virtsnapd.pid
//   <hugetlbfs mount>/libvirt/qemu-embed-<hash>/<id>-<domain>  guest RAM on huge pages
// The system layout is the same with DIR/etc, DIR/lib, DIR/run, DIR/log
// replaced by /etc/virtsnap, /var/lib/virtsnap, /run/virtsnap and
// /var/log/virtsnap (daemon sockets in /run/virtsnap, pid file /run/virtsnapd.pid).
//
// Every path derived from a name goes through file::child_path, so a domain or
// moment name can never point outside its directory.
#pragma once

#include "util/result.hh"

#include <string>
#include <string_view>

namespace virtsnap {

enum class MomentKind { Snapshot, Checkpoint };

class StateLayout {
public:
    // `root` must be an absolute path; a trailing '/' is dropped.
    [[nodiscard]] static Result<StateLayout> embedded(std::string_view root);
    static StateLayout system();

    bool is_embedded() const { return !root_.empty(); }
    const std::string &root() const { return root_; }  // "" for the system layout

    // Fixed directories.
    const std::string &config_dir() const { return config_dir_; }
    std::string autostart_dir() const { return config_dir_ + "/autostart"; }
    std::string snapshot_root() const { return lib_dir_ + "/snapshot"; }
    std::string checkpoint_root() const { return lib_dir_ + "/checkpoint"; }
    std::string moment_root(MomentKind kind) const {
        return kind == MomentKind::Snapshot ? snapshot_root() : checkpoint_root();
    }
    std::string journal_dir() const { return lib_dir_ + "/journal"; }
    std::string save_dir() const { return lib_dir_ + "/save"; }
    const std::string &lib_dir() const { return lib_dir_; }
    const std::string &runtime_dir() const { return run_dir_; }
    const std::string &log_dir() const { return log_dir_; }

    // Daemon-wide files.
    const std::string &daemon_socket() const { return socket_; }
    const std::string &daemon_socket_ro() const { return socket_ro_; }
    // The pid file, also held locked while the daemon runs.
    const std::string &pid_file() const { return pid_file_; }
    // The directory under <hugetlbfs mount>/libvirt/ that holds this daemon's
    // guests' RAM files, libvirt's naming: "qemu" for the system layout,
    // "qemu-embed-" and the first 8 hex digits of the root's SHA-256 for an
    // embedded root, so two daemons sharing a mount never collide.
    std::string hugepage_dir_name() const;

    // Per-domain paths; fail with INVALID_ARG for names that are not one path component.
    [[nodiscard]] Result<std::string> domain_config(std::string_view domain) const;
    [[nodiscard]] Result<std::string> autostart_link(std::string_view domain) const;
    [[nodiscard]] Result<std::string> snapshot_dir(std::string_view domain) const;
    [[nodiscard]] Result<std::string> checkpoint_dir(std::string_view domain) const;
    [[nodiscard]] Result<std::string> moment_dir(MomentKind kind, std::string_view domain) const;
    [[nodiscard]] Result<std::string> snapshot_file(std::string_view domain, std::string_view snapshot) const;
    // Outside the snapshot directory: libvirt reads every entry there.
    [[nodiscard]] Result<std::string> snapshot_index_file(std::string_view domain) const;
    [[nodiscard]] Result<std::string> checkpoint_file(std::string_view domain, std::string_view checkpoint) const;
    [[nodiscard]] Result<std::string> status_file(std::string_view domain) const;
    [[nodiscard]] Result<std::string> domain_pid_file(std::string_view domain) const;
    // UNIX socket paths also fail when longer than sun_path allows.
    [[nodiscard]] Result<std::string> monitor_socket(std::string_view domain) const;
    [[nodiscard]] Result<std::string> agent_socket(std::string_view domain) const;
    [[nodiscard]] Result<std::string> log_file(std::string_view domain) const;
    [[nodiscard]] Result<std::string> managed_save_file(std::string_view domain) const;

    // Creates the fixed directories (config, autostart, snapshot and checkpoint
    // roots, journal, save, runtime, log). Per-domain moment directories are
    // created on first write by MomentStore.
    [[nodiscard]] Status create_dirs() const;

private:
    StateLayout() = default;

    std::string root_;
    std::string config_dir_;
    std::string lib_dir_;
    std::string run_dir_;
    std::string log_dir_;
    std::string socket_;
    std::string socket_ro_;
    std::string pid_file_;
};

}  // namespace virtsnap
