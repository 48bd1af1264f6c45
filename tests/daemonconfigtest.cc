// daemonconfigtest.cc - virtsnapd.conf parsing: defaults, every key, libvirt's
// quoting and comments, and the errors for bad input.

#include "tap.hh"

#include "daemon/daemon_config.hh"
#include "daemon/host_capabilities.hh"
#include "util/xml_doc.hh"

using namespace virtsnap;
using daemon::DaemonConfig;

int main() {
    test::Tap t;
    auto d = DaemonConfig::parse("", "empty.conf");
    t.ok(d && d->unix_sock_rw_perms == 0600 && d->unix_sock_ro_perms == 0600 && d->max_workers == 8 &&
             d->prio_workers == 5 && d->keepalive_interval == 5 && d->keepalive_count == 5 &&
             d->snapshot_live_method == "instant" && d->snapshot_image_format == "raw" &&
             d->save_image_format == "raw" && d->memory_image_channels == 2 && d->memory_image_direct_io == "auto" &&
             d->hugetlbfs_mount.empty(),
         "empty file gives the safe defaults (libvirtd's prio_workers and keepalive, raw images)");

    auto c = DaemonConfig::parse("# comment\n"
                                 "unix_sock_rw_perms = \"0770\"\n"
                                 "unix_sock_ro_perms = \"0777\"   # trailing comment\n"
                                 "unix_sock_group = \"kvm\"\n"
                                 "log_level = 1\n"
                                 "log_filters = \"1:qemu.monitor 2:rpc\"\n"
                                 "log_outputs = \"/tmp/x#y.log\"\n"
                                 "max_workers = 16\n"
                                 "prio_workers = 2\n"
                                 "keepalive_interval = -1\n"
                                 "keepalive_count = 0\n"
                                 "snapshot_live_method = \"precopy\"\n"
                                 "snapshot_image_format = \"sparse\"\n"
                                 "save_image_format = \"sparse\"\n"
                                 "memory_image_channels = 4\n"
                                 "memory_image_direct_io = \"always\"\n"
                                 "hugetlbfs_mount = \"/dev/hugepages1G\"\n",
                                 "full.conf");
    t.ok(c.has_value(), "every key parses", c ? "" : c.error().message());
    if (c) {
        t.eq(int(c->unix_sock_rw_perms), 0770, "rw perms are octal");
        t.eq(int(c->unix_sock_ro_perms), 0777, "ro perms");
        t.eq(c->unix_sock_group, std::string("kvm"), "group");
        t.eq(c->log_level, 1, "log level");
        t.eq(c->log_filters, std::string("1:qemu.monitor 2:rpc"), "log filters");
        t.eq(c->log_outputs, std::string("/tmp/x#y.log"), "'#' inside a string is kept");
        t.eq(c->max_workers, 16u, "workers");
        t.eq(c->prio_workers, 2u, "priority workers");
        t.eq(c->keepalive_interval, -1, "keepalive disabled");
        t.eq(c->keepalive_count, 0u, "keepalive count 0 (drop after one silent interval)");
        t.eq(c->snapshot_live_method, std::string("precopy"), "live method");
        t.eq(c->snapshot_image_format, std::string("sparse"), "snapshot image format");
        t.eq(c->save_image_format, std::string("sparse"), "save image format");
        t.eq(c->memory_image_channels, 4u, "memory image channels");
        t.eq(c->memory_image_direct_io, std::string("always"), "memory image direct io");
        t.eq(c->hugetlbfs_mount, std::string("/dev/hugepages1G"), "hugetlbfs mount");
    }
    struct Bad {
        const char *text, *why;
    } bad[] = {
        {"nosuchkey = 1\n", "unknown key"},
        {"log_level = 9\n", "value out of range"},
        {"log_level = \"1\"\n", "string where a number is expected"},
        {"unix_sock_rw_perms = \"0999\"\n", "invalid permissions"},
        {"log_filters = \"abc\n", "unterminated string"},
        {"max_workers 4\n", "missing '='"},
        {"snapshot_live_method = \"fast\"\n", "unknown live method"},
        {"image_dir = \"/var/lib/images\"\n", "image_dir (libvirt has no such setting)"},
        {"keepalive_interval = -2\n", "keepalive interval below -1"},
        {"snapshot_image_format = \"gzip\"\n", "a compressed snapshot image format (libvirt's, not written here)"},
        {"save_image_format = \"mapped\"\n", "an unknown save image format"},
        {"memory_image_channels = 65\n", "more than 64 channels"},
        {"memory_image_direct_io = \"sometimes\"\n", "an unknown direct io choice"},
        {"memory_image_direct_io = 1\n", "a number for the direct io choice"},
        {"hugetlbfs_mount = 2048\n", "a number for the hugetlbfs mount"},
    };
    for (const auto &b : bad) {
        auto r = DaemonConfig::parse(b.text, "bad.conf");
        t.ok(!r && r.error().code == VIR_ERR_CONF_SYNTAX && r.error().detail.rfind("bad.conf", 0) == 0,
             std::string("rejected: ") + b.why, r ? "parsed" : r.error().message());
    }
    auto missing = DaemonConfig::load("/nonexistent/virtsnapd.conf");
    t.ok(missing && missing->max_workers == 8, "a missing file gives the defaults");

    daemon::HostCapabilitiesInput in;
    in.host_uuid = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
    in.emulator = "/usr/bin/qemu-system-x86_64";
    in.machines = {"pc-i440fx-7.2", "pc-q35-7.2"};
    in.machine_aliases = {"pc", "q35"};
    in.cpus = 2;
    in.memory_kib = 24683784;
    in.huge_pages = {{2048, 100}, {1048576, 0}};
    std::string caps = daemon::format_host_capabilities(in);
    auto doc = xml::parse(caps, "caps", VIR_FROM_NONE);
    t.ok(doc.has_value(), "capabilities parse as XML");
    if (doc) {
        auto v = xml::validate_rng(*doc, xml::schema_dir() + "/capability.rng", VIR_FROM_NONE);
        t.ok(v.has_value(), "capabilities validate against capability.rng", v ? "" : v.error().message());
    }
    // libvirt's page sizes in <cpu>, the pages of each in the cell (4 KiB: what the pools do not hold).
    t.ok(caps.find("      <arch>x86_64</arch>\n      <pages unit='KiB' size='4'/>\n"
                   "      <pages unit='KiB' size='2048'/>\n      <pages unit='KiB' size='1048576'/>\n    </cpu>") !=
             std::string::npos,
         "page sizes in <cpu>", caps);
    t.ok(caps.find("<memory unit='KiB'>24683784</memory>\n          <pages unit='KiB' size='4'>6119746</pages>\n"
                   "          <pages unit='KiB' size='2048'>100</pages>\n"
                   "          <pages unit='KiB' size='1048576'>0</pages>\n") != std::string::npos,
         "pages per size in the cell", caps);
    t.ok(caps.find("<domain type='qemu'/>") != std::string::npos && caps.find("type='kvm'") == std::string::npos,
         "qemu guests offered, kvm only when usable");
    in.kvm_usable = true;
    t.ok(daemon::format_host_capabilities(in).find("<domain type='kvm'/>") != std::string::npos,
         "kvm guests offered when KVM works");
    return t.finish();
}
