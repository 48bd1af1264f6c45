// state_layout.cc - path computation for the embedded and system layouts.

#include "conf/state_layout.hh"

#include "util/file.hh"

#include <glib.h>

#include <sys/un.h>

namespace virtsnap {

namespace {

// Errors about names in paths belong to the domain driver, as libvirt's own
// "name cannot contain '/'" checks do.
constexpr virErrorDomain kDomain = VIR_FROM_QEMU;

Result<std::string> socket_path(const std::string &dir, std::string_view domain, std::string_view suffix) {
    std::string path = TRY(file::child_path(dir, domain, suffix, kDomain));
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "Path " + path + " too long for unix socket");
    return path;
}

}  // namespace

std::string StateLayout::hugepage_dir_name() const {
    if (root_.empty()) return "qemu";
    gchar *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, root_.c_str(), -1);
    std::string name = "qemu-embed-" + std::string(hash, 8);
    g_free(hash);
    return name;
}

Result<StateLayout> StateLayout::embedded(std::string_view root) {
    std::string r(root);
    while (r.size() > 1 && r.back() == '/') r.pop_back();
    if (r.empty() || r.front() != '/' || r == "/")
        return fail(VIR_ERR_INVALID_ARG, kDomain, "root directory '" + std::string(root) + "' must be an absolute path");
    StateLayout l;
    l.root_ = r;
    l.config_dir_ = r + "/etc/qemu";
    l.lib_dir_ = r + "/lib/qemu";
    l.run_dir_ = r + "/run/qemu";
    l.log_dir_ = r + "/log/qemu";
    l.socket_ = r + "/run/virtsnapd-sock";
    l.socket_ro_ = r + "/run/virtsnapd-sock-ro";
    l.pid_file_ = r + "/run/virtsnapd.pid";
    return l;
}

StateLayout StateLayout::system() {
    StateLayout l;
    l.config_dir_ = "/etc/virtsnap/qemu";
    l.lib_dir_ = "/var/lib/virtsnap/qemu";
    l.run_dir_ = "/run/virtsnap/qemu";
    l.log_dir_ = "/var/log/virtsnap/qemu";
    l.socket_ = "/run/virtsnap/virtsnapd-sock";
    l.socket_ro_ = "/run/virtsnap/virtsnapd-sock-ro";
    l.pid_file_ = "/run/virtsnapd.pid";
    return l;
}

Result<std::string> StateLayout::domain_config(std::string_view domain) const {
    return file::child_path(config_dir_, domain, ".xml", kDomain);
}

Result<std::string> StateLayout::autostart_link(std::string_view domain) const {
    return file::child_path(autostart_dir(), domain, ".xml", kDomain);
}

Result<std::string> StateLayout::snapshot_dir(std::string_view domain) const {
    return file::child_path(snapshot_root(), domain, "", kDomain);
}

Result<std::string> StateLayout::checkpoint_dir(std::string_view domain) const {
    return file::child_path(checkpoint_root(), domain, "", kDomain);
}

Result<std::string> StateLayout::moment_dir(MomentKind kind, std::string_view domain) const {
    return kind == MomentKind::Snapshot ? snapshot_dir(domain) : checkpoint_dir(domain);
}

Result<std::string> StateLayout::snapshot_file(std::string_view domain, std::string_view snapshot) const {
    std::string dir = TRY(snapshot_dir(domain));
    return file::child_path(dir, snapshot, ".xml", VIR_FROM_DOMAIN_SNAPSHOT);
}

Result<std::string> StateLayout::snapshot_index_file(std::string_view domain) const {
    return file::child_path(lib_dir_ + "/snapshot-index", domain, ".index", VIR_FROM_DOMAIN_SNAPSHOT);
}

Result<std::string> StateLayout::checkpoint_file(std::string_view domain, std::string_view checkpoint) const {
    std::string dir = TRY(checkpoint_dir(domain));
    return file::child_path(dir, checkpoint, ".xml", VIR_FROM_DOMAIN_CHECKPOINT);
}

Result<std::string> StateLayout::status_file(std::string_view domain) const {
    return file::child_path(run_dir_, domain, ".xml", kDomain);
}

Result<std::string> StateLayout::domain_pid_file(std::string_view domain) const {
    return file::child_path(run_dir_, domain, ".pid", kDomain);
}

Result<std::string> StateLayout::monitor_socket(std::string_view domain) const {
    return socket_path(run_dir_, domain, ".monitor");
}

Result<std::string> StateLayout::agent_socket(std::string_view domain) const {
    return socket_path(run_dir_, domain, ".agent");
}

Result<std::string> StateLayout::log_file(std::string_view domain) const {
    return file::child_path(log_dir_, domain, ".log", kDomain);
}

Result<std::string> StateLayout::managed_save_file(std::string_view domain) const {
    return file::child_path(save_dir(), domain, ".save", kDomain);
}

Status StateLayout::create_dirs() const {
    // Save images hold guest memory and the journal names disk images: keep
    // them private. The rest matches libvirt's 0755 directories.
    for (const std::string &dir : {config_dir_, autostart_dir(), snapshot_root(), checkpoint_root(), run_dir_,
                                   log_dir_})
        TRY(file::make_dirs(dir, 0755, kDomain));
    TRY(file::make_dirs(journal_dir(), 0700, kDomain));
    TRY(file::make_dirs(save_dir(), 0700, kDomain));
    return ok();
}

}  // namespace virtsnap
