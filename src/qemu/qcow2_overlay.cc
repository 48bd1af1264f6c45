// qcow2_overlay.cc - the empty qcow2 overlay, laid out as qemu-img lays it out.

#include "qemu/qcow2_overlay.hh"

#include "util/file.hh"
#include "util/raii.hh"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace virtsnap::qemu::qcow2 {

namespace {

constexpr uint32_t kClusterBits = 16;
constexpr uint64_t kClusterSize = uint64_t(1) << kClusterBits;
constexpr uint32_t kHeaderLength = 112;         // v3 header with the compression type byte
constexpr uint32_t kBackingFormatExt = 0xe2792aca;
constexpr uint32_t kFeatureNameExt = 0x6803f857;
constexpr size_t kFeatureNameEntry = 48;         // type, bit, 46 bytes of name
constexpr size_t kMaxBackingName = 1023;         // the qcow2 limit

// The feature-name table qemu-img writes: every feature bit it knows.
struct FeatureName {
    uint8_t type;  // 0 incompatible, 1 compatible, 2 autoclear
    uint8_t bit;
    const char *name;
};
constexpr FeatureName kFeatureNames[] = {
    {0, 0, "dirty bit"},           {0, 1, "corrupt bit"},         {0, 2, "external data file"},
    {0, 3, "compression type"},    {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
    {2, 0, "bitmaps"},             {2, 1, "raw external data"},
};

void put_be(std::string &buf, size_t at, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i, v >>= 8) buf[at + size_t(i)] = char(v & 0xff);
}

uint64_t get_be(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
    return v;
}

size_t padded8(size_t n) { return (n + 7) & ~size_t(7); }

constexpr size_t kFeatureTableBytes = sizeof kFeatureNames / sizeof *kFeatureNames * kFeatureNameEntry;

// Bytes of cluster 0 before the backing file name: the header, then each
// extension (type, length, data padded to 8), then the end marker.
size_t extensions_end(const std::string &backing_format) {
    return kHeaderLength + 8 + padded8(backing_format.size()) + 8 + kFeatureTableBytes + 8;
}

uint64_t l1_entries(uint64_t size) {
    const uint64_t per_l2 = kClusterSize * (kClusterSize / 8);  // bytes one L2 table maps
    return (size + per_l2 - 1) / per_l2;
}

std::optional<uint64_t> backing_size(const std::string &backing, const std::string &format) {
    UniqueFd fd(::open(backing.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    struct stat st;
    if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    if (format == "raw") return uint64_t(st.st_size);
    unsigned char h[80];
    if (::pread(fd.get(), h, sizeof h, 0) != ssize_t(sizeof h)) return std::nullopt;
    if (std::memcmp(h, "QFI\xfb", 4) != 0) return std::nullopt;
    uint64_t version = get_be(h + 4, 4);
    if (version != 2 && version != 3) return std::nullopt;
    // Encrypted, or (v3) any incompatible feature but the dirty bit
    // (corrupt, external data file...): qemu-img decides what that means.
    if (get_be(h + 32, 4) != 0) return std::nullopt;
    if (version == 3 && (get_be(h + 72, 8) & ~uint64_t(1)) != 0) return std::nullopt;
    return get_be(h + 24, 8);
}

}  // namespace

std::optional<OverlayPlan> plan_overlay(const std::string &backing, const std::string &backing_format,
                                        uint64_t size_bytes) {
    if (backing_format != "qcow2" && backing_format != "raw") return std::nullopt;
    // An absolute local path only: qemu-img resolves a relative one against
    // the overlay's directory, and a protocol prefix (nbd:...) is its business.
    if (backing.empty() || backing[0] != '/' || backing.size() > kMaxBackingName ||
        backing.find('\0') != std::string::npos)
        return std::nullopt;
    auto size = backing_size(backing, backing_format);  // also proves the backing opens
    if (!size) return std::nullopt;
    if (size_bytes) size = size_bytes;
    if (*size == 0 || *size % 512 != 0 || l1_entries(*size) * 8 > kClusterSize) return std::nullopt;
    if (extensions_end(backing_format) + backing.size() > kClusterSize) return std::nullopt;
    return OverlayPlan{backing, backing_format, *size};
}

std::string overlay_bytes(const OverlayPlan &plan) {
    const uint64_t l1 = l1_entries(plan.virtual_size);
    std::string img(size_t(3 * kClusterSize + l1 * 8), '\0');
    const size_t name_at = extensions_end(plan.backing_format);

    img.replace(0, 4, "QFI\xfb", 4);
    put_be(img, 4, 3, 4);                      // version
    put_be(img, 8, name_at, 8);                // backing_file_offset
    put_be(img, 16, plan.backing.size(), 4);   // backing_file_size
    put_be(img, 20, kClusterBits, 4);
    put_be(img, 24, plan.virtual_size, 8);
    put_be(img, 32, 0, 4);                     // no encryption
    put_be(img, 36, l1, 4);                    // l1_size
    put_be(img, 40, 3 * kClusterSize, 8);      // l1_table_offset
    put_be(img, 48, 1 * kClusterSize, 8);      // refcount_table_offset
    put_be(img, 56, 1, 4);                     // refcount_table_clusters
    // nb_snapshots, snapshots_offset, the three feature masks: zero.
    put_be(img, 96, 4, 4);                     // refcount_order: 16-bit refcounts
    put_be(img, 100, kHeaderLength, 4);
    // byte 104, compression type zlib (0), then padding to 112.

    size_t at = kHeaderLength;
    put_be(img, at, kBackingFormatExt, 4);
    put_be(img, at + 4, plan.backing_format.size(), 4);
    img.replace(at + 8, plan.backing_format.size(), plan.backing_format);
    at += 8 + padded8(plan.backing_format.size());
    put_be(img, at, kFeatureNameExt, 4);
    put_be(img, at + 4, kFeatureTableBytes, 4);
    at += 8;
    for (const FeatureName &f : kFeatureNames) {
        img[at] = char(f.type);
        img[at + 1] = char(f.bit);
        img.replace(at + 2, std::strlen(f.name), f.name);
        at += kFeatureNameEntry;
    }
    at += 8;  // end of extensions: type 0, length 0
    img.replace(at, plan.backing.size(), plan.backing);

    put_be(img, kClusterSize, 2 * kClusterSize, 8);  // refcount table -> block in cluster 2
    for (uint64_t c = 0; c < 4; ++c) put_be(img, 2 * kClusterSize + c * 2, 1, 2);
    return img;
}

Status write_overlay(const std::string &path, const OverlayPlan &plan) {
    const std::string img = overlay_bytes(plan);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return fail(make_system_error(VIR_FROM_STORAGE, errno, "cannot create file '" + path + "'"));
    if (int err = file::pwrite_all(fd.get(), img, 0)) {
        ::unlink(path.c_str());
        return fail(make_system_error(VIR_FROM_STORAGE, err, "cannot write file '" + path + "'"));
    }
    if (::fdatasync(fd.get()) < 0 || ::close(fd.release()) < 0) {
        Error e = make_system_error(VIR_FROM_STORAGE, errno, "cannot sync file '" + path + "'");
        ::unlink(path.c_str());
        return fail(std::move(e));
    }
    return ok();
}

}  // namespace virtsnap::qemu::qcow2
