// host_capabilities.cc - formats the host capabilities document in libvirt's layout.

#include "daemon/host_capabilities.hh"

#include "util/xml_writer.hh"

namespace virtsnap::daemon {

std::string format_host_capabilities(const HostCapabilitiesInput &in) {
    // libvirt's virCapabilitiesHostNUMA pages: every size in <cpu>, the
    // pages of each size in the cell.
    std::vector<qemu::HugePagePool> pages;
    unsigned long long in_pools = 0;
    for (const auto &p : in.huge_pages) in_pools += p.size_kib * p.count;
    pages.push_back({4, in.memory_kib > in_pools ? (in.memory_kib - in_pools) / 4 : 0});
    pages.insert(pages.end(), in.huge_pages.begin(), in.huge_pages.end());
    xml::Writer w;
    w.line("<capabilities>");
    w.adjust_indent(2);
    w.line("");
    w.open("host");
    w.text_element("uuid", in.host_uuid);
    w.open("cpu");
    w.text_element("arch", "x86_64");
    for (const auto &p : pages) w.empty("pages", {{"unit", "KiB"}, {"size", std::to_string(p.size_kib)}});
    w.close("cpu");
    w.open("power_management");
    w.close("power_management");
    w.empty("iommu", {{"support", "no"}});
    w.open("migration_features");
    w.empty("live");
    w.close("migration_features");
    w.open("topology");
    w.open("cells", {{"num", "1"}});
    w.open("cell", {{"id", "0"}});
    w.text_element("memory", std::to_string(in.memory_kib), {{"unit", "KiB"}});
    for (const auto &p : pages)
        w.text_element("pages", std::to_string(p.count), {{"unit", "KiB"}, {"size", std::to_string(p.size_kib)}});
    w.open("cpus", {{"num", std::to_string(in.cpus)}});
    for (unsigned i = 0; i < in.cpus; ++i)
        w.empty("cpu", {{"id", std::to_string(i)}, {"socket_id", "0"}, {"die_id", "0"}, {"core_id", std::to_string(i)},
                        {"siblings", std::to_string(i)}});
    w.close("cpus");
    w.close("cell");
    w.close("cells");
    w.close("topology");
    w.close("host");
    w.line("");
    w.open("guest");
    w.text_element("os_type", "hvm");
    w.open("arch", {{"name", "x86_64"}});
    w.text_element("wordsize", "64");
    w.text_element("emulator", in.emulator);
    for (size_t i = 0; i < in.machines.size(); ++i) {
        std::string maxcpus = i < in.machine_max_cpus.size() ? std::to_string(in.machine_max_cpus[i]) : "255";
        w.text_element("machine", in.machines[i], {{"maxCpus", maxcpus}});
        if (i < in.machine_aliases.size() && !in.machine_aliases[i].empty())
            w.text_element("machine", in.machine_aliases[i], {{"canonical", in.machines[i]}, {"maxCpus", maxcpus}});
    }
    w.empty("domain", {{"type", "qemu"}});
    if (in.kvm_usable) w.empty("domain", {{"type", "kvm"}});
    w.close("arch");
    w.open("features");
    w.empty("acpi", {{"default", "on"}, {"toggle", "yes"}});
    w.empty("apic", {{"default", "on"}, {"toggle", "no"}});
    w.empty("cpuselection");
    w.empty("deviceboot");
    w.empty("disksnapshot", {{"default", "on"}, {"toggle", "no"}});
    w.close("features");
    w.close("guest");
    w.line("");
    w.adjust_indent(-2);
    w.line("</capabilities>");
    return w.take();
}

}  // namespace virtsnap::daemon
