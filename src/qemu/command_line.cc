// command_line.cc - turns a DomainDef into QEMU's argv, refusing what it
// cannot represent exactly.
#define LOG_MODULE "qemu.command_line"

#include "qemu/command_line.hh"

#include "util/log.hh"
#include "util/xml_doc.hh"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>

namespace virtsnap::qemu {

namespace {

Unexpected unsupported(std::string what) {
    return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_QEMU, std::move(what));
}

// QEMU's option syntax doubles commas inside values.
std::string escape_commas(const std::string &s) {
    std::string out;
    for (char c : s) {
        out += c;
        if (c == ',') out += ',';
    }
    return out;
}

// Parsed XML of a verbatim element (devices, features, clock, cpu).
struct Element {
    xml::Document doc;
    xml::Node root() const { return doc.root(); }
};

Result<Element> parse_element(const std::string &text) {
    Element e;
    e.doc = TRY(xml::parse(text, "(domain element)", VIR_FROM_QEMU));
    return e;
}

// Whole-string non-negative integer, or nullopt (XML values are untrusted).
std::optional<int> parse_int(const std::string &s) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoi(s);
}

std::string attr_or(const xml::Node &n, const char *name, std::string dflt = "") {
    auto v = n.attr(name);
    return v ? *v : dflt;
}

// Rejects attributes/children we would otherwise ignore silently.
Status only_children(const xml::Node &n, std::initializer_list<std::string_view> allowed, const std::string &where) {
    for (auto &c : n.children()) {
        if (std::find(allowed.begin(), allowed.end(), c.name()) == allowed.end())
            return unsupported("element '" + std::string(c.name()) + "' in " + where + " is not supported");
    }
    return ok();
}

// libvirt's virScaleInteger for a page size, in KiB: the units of its
// memory sizes, powers of 1000 for "KB", "MB"... and of 1024 otherwise.
std::optional<unsigned long long> scale_to_kib(const std::string &value, std::string unit) {
    if (value.empty() || value.size() > 15 || value.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    unsigned long long n = std::stoull(value);
    for (char &c : unit) c = char(std::tolower(static_cast<unsigned char>(c)));
    static const std::map<std::string, std::pair<unsigned long long, int>> units = {
        {"b", {1, 0}},    {"bytes", {1, 0}}, {"k", {1024, 1}}, {"kib", {1024, 1}}, {"kb", {1000, 1}},
        {"m", {1024, 2}}, {"mib", {1024, 2}}, {"mb", {1000, 2}}, {"g", {1024, 3}}, {"gib", {1024, 3}},
        {"gb", {1000, 3}}};
    auto it = units.find(unit);
    if (it == units.end()) return std::nullopt;
    unsigned long long bytes = n;
    for (int i = 0; i < it->second.second; ++i) {
        if (bytes > (~0ULL) / it->second.first) return std::nullopt;
        bytes *= it->second.first;
    }
    return bytes / 1024;
}

// libvirt's virDomainDefGetShortName: "<id>-<first 20 characters of the name>".
std::string domain_short_name(const conf::DomainDef &def) {
    size_t end = 0;
    for (int chars = 0; end < def.name.size() && chars < 20; ++chars) {
        ++end;
        while (end < def.name.size() && (static_cast<unsigned char>(def.name[end]) & 0xC0) == 0x80) ++end;
    }
    return std::to_string(def.id) + "-" + def.name.substr(0, end);
}

class Builder {
public:
    Builder(const conf::DomainDef &def, const RuntimePaths &paths, const CommandLineOptions &opts,
            const HostProbe &host, NodeIndexAllocator alloc)
        : def_(def), paths_(paths), opts_(opts), host_(host), alloc_(alloc) {}

    Result<CommandLine> build();

private:
    void add(std::initializer_list<std::string> args) { for (auto &a : args) out_.argv.push_back(a); }
    void add_pflash(int unit, const std::string &path, bool read_only) {
        std::string base = "libvirt-pflash" + std::to_string(unit);
        add({"-blockdev", qvalue_to_json(QDict{{"driver", "file"}, {"filename", path},
                                               {"node-name", base + "-storage"}, {"auto-read-only", true}}),
             "-blockdev", qvalue_to_json(QDict{{"node-name", base + "-format"}, {"read-only", read_only},
                                               {"driver", "raw"}, {"file", base + "-storage"}})});
    }
    bool exists(const std::string &p) const { return host_.file_exists ? host_.file_exists(p) : false; }

    Status check_top_level();
    Status power_management(const xml::Node &pm);
    Status memory_backing(const xml::Node &backing);
    Status security_label(const xml::Node &seclabel);
    Status machine_and_accel();
    Status cpu();
    Status features(bool &acpi, std::string &machine_extra);
    Status firmware();
    Status clock();
    Status kernel();
    Status controllers_and_disks();
    Status devices();
    Status serial_like(const xml::Node &n, const std::string &id, std::string &chardev_out);
    Status graphics_and_video(std::vector<xml::Node> &graphics, std::vector<xml::Node> &video);

    const conf::DomainDef &def_;
    const RuntimePaths &paths_;
    const CommandLineOptions &opts_;
    const HostProbe &host_;
    NodeIndexAllocator alloc_;
    CommandLine out_;
    bool q35_ = false;
    std::string pflash_machine_;
    std::vector<std::string> boot_order_;
    std::vector<std::string> clock_args_;
    std::optional<bool> disable_s3_, disable_s4_;   // <pm>: only what the XML states
    std::string machine_hpet_;
    std::string memory_backend_;    // -object of the guest RAM's backend ("" = QEMU's anonymous RAM)
};

Status Builder::check_top_level() {
    if (def_.type != "qemu" && def_.type != "kvm")
        return unsupported("domain type '" + def_.type + "' is not supported");
    if (def_.os.type != "hvm") return unsupported("os type '" + def_.os.type + "' is not supported");
    if (!def_.os.arch.empty() && def_.os.arch != "x86_64")
        return unsupported("architecture '" + def_.os.arch + "' is not supported");
    // <resource> (cgroup partition) and <on_lockfailure> (no lock manager)
    // change nothing QEMU is asked to do.
    static const std::set<std::string> harmless = {"resource", "on_lockfailure"};
    for (auto &x : def_.extras) {
        auto e = TRY(parse_element(x.xml));
        std::string name(e.root().name());
        if (name == "pm") {
            TRY(power_management(e.root()));
        } else if (name == "memoryBacking") {
            TRY(memory_backing(e.root()));
        } else if (name == "seclabel") {
            TRY(security_label(e.root()));
        } else if (!harmless.count(name)) {
            // Includes <keywrap>: s390 CPACF key wrapping has no x86 equivalent, and
            // QEMU refuses libvirt's aes-key-wrap/dea-key-wrap machine options here.
            return unsupported("element '" + name + "' is not supported");
        }
    }
    for (auto &x : def_.device_extras) {
        auto e = TRY(parse_element(x.xml));
        return unsupported("device '" + std::string(e.root().name()) + "' is not supported");
    }
    if (def_.max_memory_kib == 0) return unsupported("domain has no memory size");
    if (!def_.on_reboot.empty() && def_.on_reboot != "restart" && def_.on_reboot != "destroy")
        return unsupported("on_reboot action '" + def_.on_reboot + "' is not supported");
    return ok();
}

// libvirt's qemuBuildPMCommandLine: S3/S4 are properties of the machine's
// power-management device, PIIX4_PM on pc and ICH9-LPC on q35; only what the
// XML states is passed, so QEMU's defaults apply otherwise.
Status Builder::power_management(const xml::Node &pm) {
    TRY(only_children(pm, {"suspend-to-mem", "suspend-to-disk"}, "pm"));
    for (auto &state : pm.children()) {
        auto enabled = state.attr("enabled");
        if (!enabled) continue;
        if (*enabled != "yes" && *enabled != "no")
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN,
                        "Invalid value for attribute 'enabled' in element '" + std::string(state.name()) + "': '" +
                            *enabled + "'.");
        (state.name() == "suspend-to-mem" ? disable_s3_ : disable_s4_) = *enabled == "no";
    }
    return ok();
}

// libvirt's qemuBuildMemoryBackendProps for <memoryBacking><hugepages/>
// without NUMA: guest RAM is a memory-backend-file in a per-domain directory
// of the hugetlbfs mount with that page size, preallocated, and keeps the
// RAM block name "pc.ram" so that its memory images are the same as those of
// anonymous RAM (and libvirt's).
Status Builder::memory_backing(const xml::Node &backing) {
    TRY(only_children(backing, {"hugepages"}, "memoryBacking"));
    std::optional<xml::Node> hugepages;
    for (auto &c : backing.children()) {
        hugepages = c;
        break;
    }
    if (!hugepages) return ok();
    TRY(only_children(*hugepages, {"page"}, "hugepages"));
    unsigned long long page_kib = 0;
    for (auto &page : hugepages->children()) {
        if (page.attr("nodeset")) return unsupported("hugepages with a nodeset need a NUMA guest, which is not supported");
        if (page_kib) return unsupported("more than one hugepage size is not supported");
        auto size = page.attr("size");
        if (!size) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "missing required attribute 'size' in element 'page'");
        auto kib = scale_to_kib(*size, attr_or(page, "unit", "KiB"));
        if (!kib || *kib == 0)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "Invalid value for attribute 'size' in element 'page': '" +
                                                                *size + "'.");
        page_kib = *kib;
    }
    if (host_.hugetlbfs.empty())
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "hugetlbfs filesystem is not mounted or disabled by administrator config");
    // No size asked: the mount of the kernel's default size, else the first.
    const HugetlbfsMount *mount = page_kib ? nullptr : &host_.hugetlbfs.front();
    for (const auto &m : host_.hugetlbfs)
        if (page_kib ? m.page_kib == page_kib : m.default_size) {
            mount = &m;
            break;
        }
    if (!mount)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "Unable to find any usable hugetlbfs mount for " + std::to_string(page_kib) + " KiB");
    std::string dir = mount->path + "/libvirt/" + paths_.hugepage_dir_name + "/" + domain_short_name(def_);
    out_.memory_dirs.push_back(dir);
    memory_backend_ = qvalue_to_json(QDict{{"qom-type", "memory-backend-file"},
                                           {"id", "pc.ram"},
                                           {"mem-path", dir},
                                           {"x-use-canonical-path-for-ramblock-id", false},
                                           {"prealloc", true},
                                           {"size", uint64_t(def_.max_memory_kib) << 10}});
    return ok();
}

// There is no security driver (virsh sees model "none"): a label that asks
// for none, or leaves the model to the host, is honoured by doing nothing;
// one that names a real model (selinux, apparmor, dac) would run the guest
// unconfined, so it is refused as libvirt refuses a model it has not loaded.
Status Builder::security_label(const xml::Node &seclabel) {
    std::string model = attr_or(seclabel, "model");
    if (!model.empty() && model != "none")
        return unsupported("Unable to find security driver for model " + model);
    return ok();
}

Status Builder::machine_and_accel() {
    const std::string &m = def_.os.machine.empty() ? std::string("pc") : def_.os.machine;
    bool pc = m == "pc" || m.rfind("pc-i440fx-", 0) == 0;
    q35_ = m == "q35" || m.rfind("pc-q35-", 0) == 0;
    if (!pc && !q35_) return unsupported("machine type '" + m + "' is not supported");
    if (def_.type == "kvm") {
        // libvirt's wording for an emulator without the virt type, with the
        // reason, since on some hosts /dev/kvm opens but guests hang.
        KvmSupport kvm = host_.kvm_support(emulator_binary(def_));
        if (!kvm.usable)
            return unsupported("Emulator '" + emulator_binary(def_) + "' does not support virt type 'kvm'" +
                               (kvm.reason.empty() ? std::string() : ": " + kvm.reason));
    }
    bool acpi = false;
    std::string machine_extra;
    TRY(features(acpi, machine_extra));
    std::string machine = m + ",usb=off,dump-guest-core=off" + machine_extra;
    if (!memory_backend_.empty()) machine += ",memory-backend=pc.ram";
    if (!acpi) machine += ",acpi=off";
    machine += machine_hpet_ + pflash_machine_;
    add({"-machine", machine, "-accel", def_.type == "kvm" ? "kvm" : "tcg"});
    return ok();
}

Status Builder::features(bool &acpi, std::string &machine_extra) {
    if (def_.features_xml.empty()) return ok();
    auto e = TRY(parse_element(def_.features_xml));
    for (auto &f : e.root().children()) {
        std::string name(f.name());
        if (name == "acpi") acpi = true;
        else if (name == "apic" || name == "pae") continue;
        else if (name == "vmport") machine_extra += ",vmport=" + std::string(attr_or(f, "state", "on") == "on" ? "on" : "off");
        else return unsupported("feature '" + name + "' is not supported");
    }
    return ok();
}

Status Builder::cpu() {
    if (def_.cpu_xml.empty()) return ok();
    auto e = TRY(parse_element(def_.cpu_xml));
    auto n = e.root();
    std::string mode = attr_or(n, "mode", "custom");
    TRY(only_children(n, {"model", "topology"}, "cpu"));
    if (mode == "host-passthrough" || mode == "host-model") {
        if (def_.type != "kvm") return unsupported("CPU mode '" + mode + "' requires <domain type='kvm'>");
        add({"-cpu", "host"});
    } else if (mode == "maximum") {
        add({"-cpu", "max"});
    } else if (mode == "custom") {
        auto model = n.child_text("model");
        if (model && !model->empty()) add({"-cpu", *model});
    } else {
        return unsupported("CPU mode '" + mode + "' is not supported");
    }
    return ok();
}

Status Builder::firmware() {
    const auto &os = def_.os;
    std::string loader = os.loader_path, nvram = os.nvram_path;
    if (!os.loader_secure.empty() && os.loader_secure != "no")
        return unsupported("secure boot loaders are not supported");
    if (os.firmware == "efi" && loader.empty()) {
        for (const char *p : {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"})
            if (exists(p)) { loader = p; break; }
        if (loader.empty()) return unsupported("firmware 'efi' is requested but no OVMF image is installed");
    } else if (!os.firmware.empty() && os.firmware != "bios" && os.firmware != "efi") {
        return unsupported("firmware '" + os.firmware + "' is not supported");
    }
    if (loader.empty()) {
        if (!nvram.empty()) return unsupported("<nvram> requires a pflash <loader>");
        return ok();  // SeaBIOS, QEMU's default
    }
    if (!exists(loader)) return unsupported("loader '" + loader + "' does not exist");
    std::string type = os.loader_type.empty() ? (os.firmware == "efi" ? "pflash" : "rom") : os.loader_type;
    if (type == "rom") {
        add({"-bios", loader});
        return ok();
    }
    if (type != "pflash") return unsupported("loader type '" + type + "' is not supported");
    // Code is read-only; variables live in the per-domain nvram file, which the
    // lifecycle copies from the template before start.
    add_pflash(0, loader, true);
    pflash_machine_ = ",pflash0=libvirt-pflash0-format";
    if (!nvram.empty()) {
        add_pflash(1, nvram, false);
        pflash_machine_ += ",pflash1=libvirt-pflash1-format";
    } else if (os.loader_readonly != "yes") {
        return unsupported("a pflash loader needs <nvram> unless it is readonly='yes'");
    }
    return ok();
}

Status Builder::clock() {
    std::string base = "utc", driftfix;
    bool no_hpet = false;
    std::string pit_policy;
    if (!def_.clock_xml.empty()) {
        auto e = TRY(parse_element(def_.clock_xml));
        std::string offset = attr_or(e.root(), "offset", "utc");
        if (offset == "localtime") base = "localtime";
        else if (offset != "utc") return unsupported("clock offset '" + offset + "' is not supported");
        TRY(only_children(e.root(), {"timer"}, "clock"));
        for (auto &t : e.root().children("timer")) {
            std::string name = attr_or(t, "name"), tick = attr_or(t, "tickpolicy"), present = attr_or(t, "present");
            if (name == "rtc" && (tick.empty() || tick == "catchup") && present != "no") {
                if (tick == "catchup") driftfix = ",driftfix=slew";
            } else if (name == "pit" && present != "no" && (tick.empty() || tick == "delay")) {
                if (tick == "delay" && def_.type == "kvm") pit_policy = "delay";
            } else if (name == "hpet" && tick.empty()) {
                no_hpet = present == "no";
            } else {
                return unsupported("clock timer '" + name + "' with these settings is not supported");
            }
        }
    }
    clock_args_ = {"-rtc", "base=" + base + driftfix};
    if (!pit_policy.empty()) clock_args_.insert(clock_args_.end(), {"-global", "kvm-pit.lost_tick_policy=" + pit_policy});
    if (no_hpet) machine_hpet_ = ",hpet=off";
    return ok();
}

Status Builder::kernel() {
    const auto &os = def_.os;
    if (!os.dtb.empty()) return unsupported("element 'dtb' is not supported");
    if (!os.kernel.empty()) add({"-kernel", os.kernel});
    else if (!os.initrd.empty() || !os.cmdline.empty()) return unsupported("<initrd>/<cmdline> need a <kernel>");
    if (!os.initrd.empty()) add({"-initrd", os.initrd});
    if (!os.cmdline.empty()) add({"-append", os.cmdline});
    for (auto &x : os.extras) {
        auto e = TRY(parse_element(x.xml));
        std::string name(e.root().name());
        if (name == "bootmenu") {
            if (attr_or(e.root(), "enable") == "yes") boot_order_.push_back("menu=on");
        } else if (name != "smbios" || attr_or(e.root(), "mode") != "emulate") {
            return unsupported("element '" + name + "' in os is not supported");
        }
    }
    return ok();
}

Status Builder::controllers_and_disks() {
    bool any_boot_order = std::any_of(def_.disks.begin(), def_.disks.end(), [](auto &d) { return d.boot_order; });
    if (any_boot_order && !def_.os.boot_devs.empty())
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN,
                    "per-device boot elements cannot be used together with os/boot elements");
    std::string order;
    for (auto &b : def_.os.boot_devs) {
        if (b == "hd") order += 'c';
        else if (b == "cdrom") order += 'd';
        else if (b == "network") order += 'n';
        else return unsupported("boot device '" + b + "' is not supported");
    }
    std::string boot = "strict=on";
    if (!order.empty()) boot = "order=" + order + "," + boot;
    for (auto &b : boot_order_) boot += "," + b;
    add({"-boot", boot});

    bool need_scsi = false, need_sata = false;
    for (auto &d : def_.disks) {
        need_scsi |= d.target_bus == "scsi";
        need_sata |= d.target_bus == "sata";
    }
    if (need_scsi) add({"-device", "virtio-scsi-pci,id=scsi0"});
    if (need_sata && !q35_) add({"-device", "ahci,id=sata0"});

    std::set<std::string> targets;
    for (auto &d : def_.disks) {
        if (!targets.insert(d.target_dev).second)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "target '" + d.target_dev + "' duplicated for disk sources");
        auto graph = TRY(disk_block_graph(d, alloc_));
        for (const QValue *node : graph.creation_order()) add({"-blockdev", qvalue_to_json(*node)});
        add({"-device", TRY(disk_frontend_device(d, graph, q35_))});
        out_.disks.push_back(std::move(graph));
    }
    return ok();
}

Status Builder::serial_like(const xml::Node &n, const std::string &id, std::string &chardev) {
    std::string type = attr_or(n, "type", "pty");
    xml::Node source = n.child("source");
    std::string path = source ? attr_or(source, "path") : "";
    if (type == "pty") {
        chardev = "pty,id=" + id;
    } else if (type == "file") {
        if (path.empty()) return unsupported("<" + std::string(n.name()) + " type='file'> needs a source path");
        chardev = "file,id=" + id + ",path=" + escape_commas(path) +
                  (source && attr_or(source, "append") == "on" ? ",append=on" : "");
    } else if (type == "unix") {
        std::string mode = source ? attr_or(source, "mode", "bind") : "bind";
        if (path.empty() && id.rfind("charchannel", 0) == 0) path = paths_.agent_socket;
        if (path.empty()) return unsupported("<" + std::string(n.name()) + " type='unix'> needs a source path");
        chardev = "socket,id=" + id + ",path=" + escape_commas(path) +
                  (mode == "bind" ? ",server=on,wait=off" : "");
    } else if (type == "null") {
        chardev = "null,id=" + id;
    } else {
        return unsupported("character device type '" + type + "' is not supported");
    }
    return ok();
}

Status Builder::devices() {
    std::vector<xml::Node> graphics, video;
    std::vector<Element> keep;
    keep.reserve(def_.devices.size());
    int serial_index = 0, net_index = 0, channel_index = 0, rng_index = 0;
    bool virtio_serial = false, have_serial = false;
    std::vector<std::string> late;   // devices that need virtio-serial first

    for (auto &dev : def_.devices) {
        keep.push_back(TRY(parse_element(dev.xml)));
        xml::Node n = keep.back().root();
        const std::string &kind = dev.kind;
        if (kind == "controller") {
            std::string type = attr_or(n, "type"), model = attr_or(n, "model"), index = attr_or(n, "index", "0");
            if (type == "pci" && (model == "pci-root" || model == "pcie-root")) continue;
            if (type == "pci" && model == "pcie-root-port") {
                auto i = parse_int(index);
                if (!i || *i < 1 || *i > 0xef) return unsupported("invalid pcie-root-port index '" + index + "'");
                char port[16];
                snprintf(port, sizeof port, "0x%x", 0x10 + *i - 1);
                add({"-device", "pcie-root-port,port=" + std::string(port) + ",chassis=" + index + ",id=pci." +
                                    index + ",bus=pcie.0"});
            } else if (type == "usb" && model == "none") {
                continue;
            } else if (type == "ide" && !q35_) {
                continue;  // built into the PIIX machine
            } else if (type == "sata" && (q35_ || index == "0")) {
                continue;  // q35's built-in AHCI, or added for SATA disks on pc
            } else if (type == "scsi" && index == "0" && (model.empty() || model == "virtio-scsi")) {
                continue;  // added with the first SCSI disk
            } else if (type == "virtio-serial" && index == "0") {
                virtio_serial = true;
            } else {
                return unsupported("controller type '" + type + "'" +
                                   (model.empty() ? "" : " model '" + model + "'") + " is not supported");
            }
        } else if (kind == "interface") {
            std::string type = attr_or(n, "type");
            if (type != "user") return unsupported("interface type '" + type + "' is not supported");
            TRY(only_children(n, {"mac", "model", "address", "alias"}, "interface"));
            std::string model = n.child("model") ? attr_or(n.child("model"), "type", "virtio") : "virtio";
            std::string qdev = model == "virtio" ? "virtio-net-pci" : model == "e1000" ? "e1000"
                             : model == "e1000e" ? "e1000e" : model == "rtl8139" ? "rtl8139" : "";
            if (qdev.empty()) return unsupported("interface model '" + model + "' is not supported");
            std::string id = std::to_string(net_index++);
            std::string mac = n.child("mac") ? attr_or(n.child("mac"), "address") : "";
            add({"-netdev", "user,id=hostnet" + id});
            add({"-device", qdev + ",netdev=hostnet" + id + ",id=net" + id + (mac.empty() ? "" : ",mac=" + mac)});
        } else if (kind == "serial" || kind == "console") {
            xml::Node target = n.child("target");
            std::string ttype = target ? attr_or(target, "type", "isa-serial") : "isa-serial";
            if (kind == "console") {
                // A serial-typed console is the first serial port itself.
                if (ttype == "serial" && have_serial) continue;
                if (ttype != "serial") return unsupported("console target type '" + ttype + "' is not supported");
            } else if (ttype != "isa-serial") {
                return unsupported("serial target type '" + ttype + "' is not supported");
            }
            std::string id = "charserial" + std::to_string(serial_index);
            std::string chardev;
            TRY(serial_like(n, id, chardev));
            add({"-chardev", chardev, "-device",
                 "isa-serial,chardev=" + id + ",id=serial" + std::to_string(serial_index)});
            ++serial_index;
            have_serial = true;
        } else if (kind == "channel") {
            xml::Node target = n.child("target");
            if (!target || attr_or(target, "type") != "virtio")
                return unsupported("channel target type '" + (target ? attr_or(target, "type") : "") +
                                   "' is not supported");
            std::string id = "charchannel" + std::to_string(channel_index);
            std::string chardev;
            TRY(serial_like(n, id, chardev));
            std::string name = attr_or(target, "name");
            add({"-chardev", chardev});
            late.push_back("virtserialport,bus=virtio-serial0.0,nr=" + std::to_string(channel_index + 1) +
                           ",chardev=" + id + ",id=channel" + std::to_string(channel_index) +
                           (name.empty() ? "" : ",name=" + name));
            ++channel_index;
        } else if (kind == "graphics") {
            graphics.push_back(n);
        } else if (kind == "video") {
            video.push_back(n);
        } else if (kind == "input") {
            std::string bus = attr_or(n, "bus", "ps2");
            if (bus != "ps2") return unsupported("input bus '" + bus + "' is not supported");
        } else if (kind == "memballoon") {
            std::string model = attr_or(n, "model");
            if (model == "virtio") add({"-device", "virtio-balloon-pci,id=balloon0"});
            else if (model != "none") return unsupported("memballoon model '" + model + "' is not supported");
        } else if (kind == "rng") {
            xml::Node backend = n.child("backend");
            if (attr_or(n, "model") != "virtio" || !backend || attr_or(backend, "model") != "random")
                return unsupported("rng device other than virtio with a random backend is not supported");
            std::string file = backend.text().empty() ? "/dev/urandom" : backend.text();
            std::string id = std::to_string(rng_index++);
            add({"-object", qvalue_to_json(QDict{{"qom-type", "rng-random"}, {"id", "objrng" + id},
                                                 {"filename", file}})});
            add({"-device", "virtio-rng-pci,rng=objrng" + id + ",id=rng" + id});
        } else if (kind == "emulator" || kind == "disk") {
            continue;
        } else {
            return unsupported("device '" + kind + "' is not supported");
        }
    }
    if (!late.empty() || virtio_serial) {
        add({"-device", "virtio-serial-pci,id=virtio-serial0"});
        for (auto &d : late) add({"-device", d});
    }
    TRY(graphics_and_video(graphics, video));
    return ok();
}

Status Builder::graphics_and_video(std::vector<xml::Node> &graphics, std::vector<xml::Node> &video) {
    if (graphics.size() > 1) return unsupported("only one graphics device is supported");
    for (auto &g : graphics) {
        std::string type = attr_or(g, "type");
        if (type != "vnc") return unsupported("graphics type '" + type + "' is not supported");
        std::string listen = attr_or(g, "listen");
        if (auto l = g.child("listen")) {
            std::string ltype = attr_or(l, "type", "address");
            if (ltype != "address") return unsupported("graphics listen type '" + ltype + "' is not supported");
            if (l.attr("address")) listen = attr_or(l, "address");
        }
        if (!listen.empty() && listen != "127.0.0.1" && listen != "localhost" && listen != "::1")
            return unsupported("VNC listen address '" + listen + "' is not supported: only loopback");
        if (g.attr("passwd")) return unsupported("VNC passwords are not supported");
        int display;
        std::string port = attr_or(g, "port", "-1");
        if (attr_or(g, "autoport", port == "-1" ? "yes" : "no") == "yes" || port == "-1") {
            display = opts_.vnc_display;
        } else {
            auto p = parse_int(port);
            if (!p || *p < 5900 || *p > 65535) return unsupported("VNC port '" + port + "' is not supported");
            display = *p - 5900;
        }
        std::string host = listen == "::1" ? "[::1]" : "127.0.0.1";
        add({"-vnc", host + ":" + std::to_string(display)});
    }
    // Without graphics QEMU would pick a local display of its own.
    if (graphics.empty()) add({"-display", "none"});
    if (video.empty() && !graphics.empty()) add({"-device", "VGA,id=video0"});
    int vi = 0;
    for (auto &v : video) {
        xml::Node model = v.child("model");
        std::string type = model ? attr_or(model, "type", "vga") : "vga";
        std::string qdev = type == "vga" ? "VGA" : type == "cirrus" ? "cirrus-vga" : type == "virtio" ? "virtio-vga"
                         : type == "bochs" ? "bochs-display" : type == "none" ? "-" : "";
        if (qdev.empty()) return unsupported("video model '" + type + "' is not supported");
        if (qdev == "-") continue;
        add({"-device", qdev + ",id=video" + std::to_string(vi++)});
    }
    return ok();
}

Result<CommandLine> Builder::build() {
    TRY(check_top_level());
    add({emulator_binary(def_)});
    add({"-name", "guest=" + escape_commas(def_.name) + ",debug-threads=on"});
    if (opts_.paused) add({"-S"});
    // Firmware nodes come before -machine, which names them.
    TRY(firmware());
    TRY(clock());
    TRY(machine_and_accel());
    TRY(cpu());
    add({"-m", "size=" + std::to_string(def_.max_memory_kib) + "k"});
    if (!memory_backend_.empty()) add({"-object", memory_backend_});
    unsigned cur = def_.vcpus_current.value_or(def_.vcpus);
    if (def_.vcpus == 0 || cur == 0 || cur > def_.vcpus) return unsupported("invalid vCPU count");
    std::string smp = std::to_string(cur);
    if (cur != def_.vcpus) smp += ",maxcpus=" + std::to_string(def_.vcpus);
    smp += ",sockets=" + std::to_string(def_.vcpus) + ",cores=1,threads=1";
    add({"-smp", smp});
    add({"-uuid", def_.uuid.str()});
    add({"-no-user-config", "-nodefaults"});
    add({"-chardev", "socket,id=charmonitor,path=" + escape_commas(paths_.monitor_socket) + ",server=on,wait=off",
         "-mon", "chardev=charmonitor,id=monitor,mode=control"});
    for (auto &a : clock_args_) out_.argv.push_back(a);
    // The guest's poweroff leaves QEMU paused, so the lifecycle sees SHUTDOWN and
    // decides (on_poweroff, fake reboot) instead of QEMU vanishing.
    add({"-no-shutdown"});
    if (def_.on_reboot == "destroy") add({"-no-reboot"});
    std::string pm_device = q35_ ? "ICH9-LPC" : "PIIX4_PM";
    if (disable_s3_) add({"-global", pm_device + ".disable_s3=" + (*disable_s3_ ? "1" : "0")});
    if (disable_s4_) add({"-global", pm_device + ".disable_s4=" + (*disable_s4_ ? "1" : "0")});
    TRY(kernel());
    TRY(controllers_and_disks());
    TRY(devices());
    if (!paths_.pidfile.empty()) add({"-pidfile", paths_.pidfile});
    if (opts_.incoming_defer) add({"-incoming", "defer"});
    add({"-msg", "timestamp=on"});
    out_.next_node_index = alloc_.next();
    return std::move(out_);
}

}  // namespace

std::string emulator_binary(const conf::DomainDef &def) {
    return def.emulator.empty() ? std::string("/usr/bin/qemu-system-x86_64") : def.emulator;
}

Result<CommandLine> build_command_line(const conf::DomainDef &def, const RuntimePaths &paths,
                                       const CommandLineOptions &opts, const HostProbe &host,
                                       NodeIndexAllocator alloc) {
    Builder b(def, paths, opts, host, alloc);
    return b.build();
}

}  // namespace virtsnap::qemu
