// backup_store.cc - backup <target>/<scratch> storage: parse and format as
// libvirt 9.0's generic storage-source code does for file and block sources.

#include "conf/backup_store.hh"

#include "conf/checkpoint_common.hh"
#include "util/uuid.hh"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <set>

namespace virtsnap::conf {

namespace {

// virStorageFileFormat names; index 0 ("none") is not accepted as input.
constexpr std::array kStorageFormats{"none", "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi",
                                     "fat", "vhd", "ploop", "cow", "qcow", "qcow2", "qed", "vmdk"};
// virStorageType names; index 0 ("none") is not accepted as input.
constexpr std::array kStorageTypes{"none", "file", "block", "dir", "network", "volume", "nvme", "vhostuser"};

Unexpected xml_error(virErrorDomain domain, std::string detail) {
    return fail(VIR_ERR_XML_ERROR, domain, std::move(detail));
}

// virStrToLong_uip: a whole, non-negative base-10 number that fits unsigned int.
std::optional<unsigned> parse_unsigned(const std::string &s) {
    if (s.empty()) return std::nullopt;
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || end == s.c_str() || v < 0 || v > 0xffffffffLL) return std::nullopt;
    return unsigned(v);
}

Result<BackupSeclabel> parse_seclabel(xml::Node node, bool status) {
    BackupSeclabel label;
    label.model = node.attr("model");
    BackupTristate relabel = TRY(parse_tristate_attr(node, "relabel"));
    label.relabel = relabel != BackupTristate::No;
    // labelskip is runtime state: only status XML carries it.
    if (status) {
        BackupTristate skip = TRY(parse_tristate_attr(node, "labelskip"));
        label.labelskip = skip == BackupTristate::Yes;
    }
    label.label = cpcommon::xpath_string(node.child("label"));
    if (label.label && !label.relabel)
        return xml_error(VIR_FROM_DOMAIN, "Cannot specify a label if relabelling is turned off. model=" +
                                              label.model.value_or("<null>"));
    return label;
}

Result<BackupEncryptionSecret> parse_secret(xml::Node node) {
    BackupEncryptionSecret secret;
    auto type = node.attr("type");
    if (!type) return xml_error(VIR_FROM_STORAGE, "unknown volume encryption secret type");
    if (*type != "passphrase")
        return xml_error(VIR_FROM_STORAGE, "unknown volume encryption secret type " + *type);
    secret.type = *type;
    secret.uuid = node.attr("uuid");
    secret.usage = node.attr("usage");
    if (secret.uuid && secret.usage)
        return xml_error(VIR_FROM_NONE, "either secret uuid or usage expected");
    if (!secret.uuid && !secret.usage)
        return xml_error(VIR_FROM_NONE, "missing either uuid or usage attribute");
    if (secret.uuid) {
        auto parsed = Uuid::parse(*secret.uuid);
        if (!parsed) return xml_error(VIR_FROM_NONE, "invalid secret uuid '" + *secret.uuid + "'");
        // libvirt keeps the UUID as bytes and prints its canonical form.
        secret.uuid = parsed->str();
    }
    return secret;
}

Result<BackupEncryption> parse_encryption(xml::Node node) {
    BackupEncryption enc;
    auto format = node.attr("format");
    if (!format || format->empty()) return xml_error(VIR_FROM_STORAGE, "unknown volume encryption format");
    if (*format != "default" && *format != "qcow" && *format != "luks")
        return xml_error(VIR_FROM_STORAGE, "unknown volume encryption format type " + *format);
    enc.format = *format;
    if (auto engine = node.attr("engine")) {
        if (*engine != "qemu" && *engine != "librbd")
            return xml_error(VIR_FROM_XML, "Invalid value for attribute 'engine' in element 'encryption': '" +
                                               *engine + "'.");
        enc.engine = *engine;
    }
    for (xml::Node s : node.children("secret")) enc.secrets.push_back(TRY(parse_secret(s)));
    if (enc.format == "luks") {
        if (xml::Node cipher = node.child("cipher")) {
            enc.cipher_name = cipher.attr("name");
            if (!enc.cipher_name) return xml_error(VIR_FROM_STORAGE, "cipher info missing 'name' attribute");
            auto size = cipher.attr("size");
            if (!size) return xml_error(VIR_FROM_STORAGE, "cipher info missing 'size' attribute");
            auto n = parse_unsigned(*size);
            if (!n) return xml_error(VIR_FROM_STORAGE, "cannot parse cipher size: '" + *size + "'");
            enc.cipher_size = std::to_string(*n);
            enc.cipher_mode = cipher.attr("mode");
            enc.cipher_hash = cipher.attr("hash");
            enc.has_cipher = true;
        }
        if (xml::Node ivgen = node.child("ivgen")) {
            enc.ivgen_name = ivgen.attr("name");
            if (!enc.ivgen_name) return xml_error(VIR_FROM_STORAGE, "missing ivgen info name string");
            enc.ivgen_hash = ivgen.attr("hash");
            enc.has_ivgen = true;
        }
    }
    return enc;
}

void format_encryption(xml::Writer &w, const BackupEncryption &enc) {
    w.open("encryption", {{"format", enc.format}, {"engine", enc.engine}});
    for (const auto &s : enc.secrets)
        w.empty("secret", {{"type", s.type}, {"uuid", s.uuid}, {"usage", s.uuid ? std::nullopt : s.usage}});
    if (enc.has_cipher)
        w.empty("cipher", {{"name", enc.cipher_name},
                           {"size", enc.cipher_size},
                           {"mode", enc.cipher_mode},
                           {"hash", enc.cipher_hash}});
    if (enc.has_ivgen) w.empty("ivgen", {{"name", enc.ivgen_name}, {"hash", enc.ivgen_hash}});
    w.close("encryption");
}

void format_seclabel(xml::Writer &w, const BackupSeclabel &l) {
    xml::Attrs attrs{{"model", l.model}};
    if (l.labelskip) attrs.emplace_back("labelskip", "yes");
    else attrs.emplace_back("relabel", l.relabel ? "yes" : "no");
    if (!l.label) {
        w.empty("seclabel", attrs);
        return;
    }
    w.open("seclabel", attrs);
    w.text_element("label", *l.label);
    w.close("seclabel");
}

}  // namespace

Result<BackupTristate> parse_tristate_attr(xml::Node node, const char *attr) {
    auto v = node.attr(attr);
    if (!v) return BackupTristate::Absent;
    if (*v == "yes") return BackupTristate::Yes;
    if (*v == "no") return BackupTristate::No;
    return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                "Invalid value for attribute '" + std::string(attr) + "' in element '" +
                    std::string(node.name()) + "': '" + *v + "'.");
}

Result<BackupStore> backup_store_parse_base(const std::optional<std::string> &type,
                                            const std::optional<std::string> &format,
                                            const std::optional<std::string> &index) {
    BackupStore store;
    if (type) {
        size_t i = 1;
        while (i < kStorageTypes.size() && *type != kStorageTypes[i]) i++;
        if (i == kStorageTypes.size())
            return xml_error(VIR_FROM_DOMAIN, "unknown storage source type '" + *type + "'");
        if (i == 1) store.type = StorageSource::Type::File;
        else if (i == 2) store.type = StorageSource::Type::Block;
        else return xml_error(VIR_FROM_DOMAIN, "unsupported disk backup type '" + *type + "'");
    }
    if (format) {
        size_t i = 1;
        while (i < kStorageFormats.size() && *format != kStorageFormats[i]) i++;
        if (i == kStorageFormats.size())
            return xml_error(VIR_FROM_DOMAIN, "unknown storage source format '" + *format + "'");
        store.format = *format;
    }
    if (index) {
        auto n = parse_unsigned(*index);
        if (!n) return xml_error(VIR_FROM_DOMAIN, "invalid storage source index '" + *index + "'");
        store.index = *n;
    }
    return store;
}

Status backup_store_parse_source(BackupStore &store, xml::Node node, bool status) {
    auto path = node.attr(store.type == StorageSource::Type::Block ? "dev" : "file");
    // libvirt treats an empty path as no path at all.
    store.path = path.value_or("");
    if (xml::Node enc = node.child("encryption")) store.encryption = TRY(parse_encryption(enc));
    std::set<std::string> models;
    for (xml::Node l : node.children("seclabel")) {
        BackupSeclabel label = TRY(parse_seclabel(l, status));
        if (label.model && !models.insert(*label.model).second)
            return fail(VIR_ERR_XML_DETAIL, VIR_FROM_DOMAIN,
                        "seclabel for model " + *label.model + " is already provided");
        store.seclabels.push_back(std::move(label));
    }
    return ok();
}

void backup_store_format_source(xml::Writer &w, const BackupStore &store, std::string_view element) {
    xml::Element el(w, element);
    if (!store.path.empty())
        el.attr(store.type == StorageSource::Type::Block ? "dev" : "file", store.path);
    for (const auto &l : store.seclabels) format_seclabel(el.children(), l);
    if (store.encryption) format_encryption(el.children(), *store.encryption);
    el.finish();
}

}  // namespace virtsnap::conf
