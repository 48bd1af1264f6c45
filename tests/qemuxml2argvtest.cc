// qemuxml2argvtest.cc - golden tests of the QEMU command line: every
// tests/qemuxml2argvdata/NAME.xml is turned into argv and compared with
// NAME.args (one argument per line) or, for rejected definitions, the error
// message with NAME.err. VIRTSNAP_TEST_REGENERATE=1 rewrites the goldens.
// Also unit tests of the block graph (node names, chains, overlay layers).
//
// Name conventions select options: "-running" starts unpaused,
// "incoming-" adds -incoming defer, "kvm-ok" has a usable KVM, "hugepages-"
// has hugetlbfs mounts unless it says "unmounted".

#include "tap.hh"

#include "conf/domain_def.hh"
#include "qemu/block_graph.hh"
#include "qemu/command_line.hh"
#include "util/file.hh"

#include <string>

using namespace virtsnap;
using namespace virtsnap::qemu;

namespace {

qemu::HostProbe fake_host(const std::string &name) {
    qemu::HostProbe h;
    h.kvm_usable = name.find("kvm-ok") != std::string::npos;
    if (!h.kvm_usable) h.kvm_reason = "guests hang on this host";
    // Firmware "exists" unless its path says otherwise, so goldens do not
    // depend on what the build machine has installed.
    h.file_exists = [](const std::string &p) { return p.find("missing") == std::string::npos; };
    // "hugepages-" cases: a default-size 2 MiB mount and a 1 GiB one, except
    // where the name says there is none.
    if (name.rfind("hugepages-", 0) == 0 && name.find("unmounted") == std::string::npos)
        h.hugetlbfs = {{"/dev/hugepages", 2048, true}, {"/dev/hugepages1G", 1048576, false}};
    return h;
}

void test_golden(test::Tap &t, const std::string &dir, const std::string &name) {
    std::string xml = test::read_text(dir + "/" + name + ".xml");
    auto def = conf::DomainDef::parse_string(xml, conf::kDomainParseInactive);
    std::string args_path = dir + "/" + name + ".args", err_path = dir + "/" + name + ".err";
    if (!def.has_value() && file::exists(err_path)) {
        // Some definitions are already refused by the parser, as in libvirt.
        t.eq_file(def.error().message() + "\n", err_path, name + ": parse error message");
        return;
    }
    if (!t.ok(def.has_value(), name + ": parses", def ? "" : def.error().message())) return;

    RuntimePaths paths;
    paths.monitor_socket = "/run/virtsnap/qemu/" + name + "/monitor.sock";
    paths.agent_socket = "/run/virtsnap/qemu/" + name + "/agent.sock";
    paths.pidfile = "/run/virtsnap/qemu/" + name + "/qemu.pid";
    CommandLineOptions opts;
    opts.paused = name.find("-running") == std::string::npos;
    opts.incoming_defer = name.rfind("incoming-", 0) == 0;
    opts.vnc_display = 3;

    auto cl = build_command_line(**def, paths, opts, fake_host(name));
    bool expect_error = file::exists(err_path) || (!file::exists(args_path) && !cl.has_value());
    if (expect_error) {
        if (!t.ok(!cl.has_value(), name + ": is rejected")) return;
        t.eq_file(cl.error().message() + "\n", err_path, name + ": error message");
        // libvirt reports a missing hugetlbfs mount as an internal error.
        bool hugetlbfs = cl.error().message().find("hugetlbfs") != std::string::npos;
        t.ok(cl.error().code == VIR_ERR_CONFIG_UNSUPPORTED || cl.error().code == VIR_ERR_XML_ERROR ||
                 (hugetlbfs && cl.error().code == VIR_ERR_INTERNAL_ERROR),
             name + ": error code", std::to_string(int(cl.error().code)));
        return;
    }
    if (!t.ok(cl.has_value(), name + ": builds", cl ? "" : cl.error().message())) return;
    std::string text;
    for (auto &a : cl->argv) text += a + "\n";
    t.eq_file(text, args_path, name + ": argv");
}

void test_block_graph(test::Tap &t) {
    NodeIndexAllocator alloc;
    conf::DomainDisk disk;
    disk.target_dev = "vdb";
    disk.target_bus = "virtio";
    disk.src.type = conf::StorageSource::Type::File;
    disk.src.path = "/img/top.qcow2";
    disk.src.format = "qcow2";
    disk.src.backing = std::make_unique<conf::StorageSource>();
    disk.src.backing->path = "/img/base.qcow2";
    disk.src.backing->format = "qcow2";
    auto g = disk_block_graph(disk, alloc);
    if (!t.ok(g.has_value(), "chain graph builds", g ? "" : g.error().message())) return;
    t.eq(g->layers.size(), size_t(2), "two layers");
    t.eq(g->top_node(), std::string("libvirt-2-format"), "base allocated first, top gets the larger index");
    t.eq(alloc.next(), 2u + 1u, "allocator advanced past both layers");
    auto order = g->creation_order();
    std::string seq;
    for (auto *n : order) seq += *n->get("node-name")->str() + " ";
    t.eq(seq, std::string("libvirt-1-storage libvirt-1-format libvirt-2-storage libvirt-2-format "),
         "creation order is base first, storage before format");
    t.eq(qvalue_to_json(g->layers[0].format),
         std::string("{\"node-name\":\"libvirt-2-format\",\"read-only\":false,\"driver\":\"qcow2\","
                     "\"file\":\"libvirt-2-storage\",\"backing\":\"libvirt-1-format\"}"),
         "top format node names its backing explicitly");
    t.eq(qvalue_to_json(g->layers[1].format),
         std::string("{\"node-name\":\"libvirt-1-format\",\"read-only\":true,\"driver\":\"qcow2\","
                     "\"file\":\"libvirt-1-storage\",\"backing\":null}"),
         "base is read-only and ends the chain with null");
    auto dev = disk_frontend_device(disk, *g, false);
    t.ok(dev && *dev == "virtio-blk-pci,drive=libvirt-2-format,id=virtio-disk1", "frontend device",
         dev ? *dev : dev.error().message());

    // A snapshot overlay: one new layer, backing null (blockdev-snapshot links it).
    conf::StorageSource overlay;
    overlay.path = "/img/top.snap1";
    overlay.format = "qcow2";
    auto layer = layer_nodes(overlay, alloc.allocate(), LayerOptions{});
    t.ok(layer && layer->format_name() == "libvirt-3-format" && layer->storage_name() == "libvirt-3-storage",
         "overlay layer gets the next index");
    if (layer)
        t.eq(qvalue_to_json(layer->storage),
             std::string("{\"driver\":\"file\",\"filename\":\"/img/top.snap1\",\"node-name\":\"libvirt-3-storage\","
                         "\"auto-read-only\":true}"),
             "overlay protocol node");

    // Indexes from status XML are kept, and the allocator moves past them.
    NodeIndexAllocator restored(1);
    conf::DomainDisk st;
    st.target_dev = "vda";
    st.target_bus = "virtio";
    st.src.path = "/img/a.qcow2";
    st.src.format = "qcow2";
    st.src.index = 7;
    st.src.backing_terminated = true;
    auto sg = disk_block_graph(st, restored);
    t.ok(sg && sg->top_node() == "libvirt-7-format" && restored.next() == 8, "status index adopted");

    t.eq(disk_name_to_index("vda"), 0, "vda is 0");
    t.eq(disk_name_to_index("sdaa"), 26, "sdaa is 26");
    t.eq(disk_name_to_index("hdz"), 25, "hdz is 25");
    t.eq(disk_name_to_index("xyz"), -1, "unknown prefix");

    conf::StorageSource dir;
    dir.type = conf::StorageSource::Type::Dir;
    dir.path = "/srv";
    auto bad = layer_nodes(dir, 1, LayerOptions{});
    t.ok(!bad && bad.error().code == VIR_ERR_CONFIG_UNSUPPORTED, "dir sources are unsupported");
}

}  // namespace

int main() {
    test::Tap t;
    test_block_graph(t);
    std::string dir = test::source_dir() + "/qemuxml2argvdata";
    auto names = file::list_dir(dir);
    if (!t.ok(names.has_value(), "list goldens")) return t.finish();
    int cases = 0;
    for (auto &n : *names) {
        if (n.size() < 5 || n.substr(n.size() - 4) != ".xml") continue;
        test_golden(t, dir, n.substr(0, n.size() - 4));
        ++cases;
    }
    t.ok(cases >= 20, "golden cases found", std::to_string(cases));
    return t.finish();
}
