// save_image.hh - libvirt's QEMU save image: what `virsh save`, `managedsave`
// and external memory snapshots write and `virsh restore` reads, in the exact
// layout of libvirt 9.0 (qemu_saveimage.h), so images move between libvirt
// and virtsnap in both directions.
//
//   offset 0    92-byte header, little-endian, no gaps:
//               magic[16] "LibvirtQemudPart" while written, "LibvirtQemudSave" when complete
//               u32 version (2), u32 data_len, u32 was_running, u32 compressed,
//               u32 cookieOffset, u32 unused[14]
//   offset 92   domain XML + NUL, <cookie> XML + NUL, zero padding up to data_len
//               (data_len = xml_len + cookie_len + 65536, so the XML can grow in place)
//   92+data_len QEMU's migration stream: the plain stream (format 0, "raw"), or
//               its mapped-ram layout (format 6, "sparse", libvirt 11's name:
//               guest pages at fixed offsets, zero pages left as holes)
//
// Writer life cycle:
//
//   create() ──► header(Part)+XML+cookie+padding written, fd at the stream offset
//      │               (QEMU's migration writes through fd())
//      ├──► finalize(): fsync, header rewritten with the Save magic, fsync;
//      │                an existing regular file is replaced only now (rename)
//      └──► abort() / destructor without finalize(): a file we created is
//                       unlinked; a file that existed before is left untouched
//
// An existing regular file is never truncated up front: the image is written
// to a temporary file next to it and renamed over it by finalize(), so a
// failed save loses nothing. Other existing targets (block or character
// devices, FIFOs) are written in place, as libvirt does.
#pragma once

#include "util/raii.hh"
#include "util/result.hh"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace virtsnap::qemu {

struct SaveImageHeader {
    static constexpr size_t kSize = 92;
    static constexpr std::string_view kMagicComplete = "LibvirtQemudSave";
    static constexpr std::string_view kMagicPartial = "LibvirtQemudPart";
    static constexpr uint32_t kVersion = 2;
    static constexpr uint32_t kPadding = 64 * 1024;

    // The `compressed` field's values (on-disk ABI; libvirt later named the
    // field `format`). virtsnap writes and reads kRaw and kSparse.
    enum Format : uint32_t { kRaw = 0, kGzip = 1, kBzip2 = 2, kXz = 3, kLzop = 4, kZstd = 5, kSparse = 6 };

    bool complete = false;      // which magic
    uint32_t version = kVersion;
    uint32_t data_len = 0;
    uint32_t was_running = 0;
    uint32_t compressed = kRaw;
    uint32_t cookie_offset = 0;

    // The 92 bytes as they are on disk (little-endian).
    std::array<unsigned char, kSize> encode() const;
    // libvirt's header checks (qemuSaveImageReadHeader): magic, version (with
    // the byte-swapped retry), data length. Errors are VIR_ERR_OPERATION_FAILED
    // with libvirt's texts.
    [[nodiscard]] static Result<SaveImageHeader> decode(const unsigned char *bytes, size_t len);

    uint64_t stream_offset() const { return kSize + uint64_t(data_len); }
};

// Name of a `compressed` value ("raw", "gzip" ...), "" when unknown.
std::string_view save_image_format_name(uint32_t format);

class SaveImageWriter {
public:
    struct Options {
        std::string xml;                     // domain XML (migratable live definition)
        std::optional<std::string> cookie;   // "<cookie>...</cookie>\n", or none
        bool was_running = false;
        int mode = 0600;
        // kRaw or kSparse (which needs a regular file: QEMU seeks in it).
        uint32_t format = SaveImageHeader::kRaw;
    };

    // Opens `path` and writes everything up to the stream offset. Errors are
    // libvirt's system errors ("Failed to create file '...'", "failed to write
    // header to domain save file '...'").
    [[nodiscard]] static Result<SaveImageWriter> create(const std::string &path, const Options &options);

    SaveImageWriter(SaveImageWriter &&o) noexcept;
    SaveImageWriter &operator=(SaveImageWriter &&) = delete;
    SaveImageWriter(const SaveImageWriter &) = delete;
    SaveImageWriter &operator=(const SaveImageWriter &) = delete;
    ~SaveImageWriter();

    // Positioned at the stream offset; QEMU shares the file offset through getfd.
    int fd() const { return fd_.get(); }
    const std::string &path() const { return path_; }
    const SaveImageHeader &header() const { return header_; }
    uint64_t stream_offset() const { return header_.stream_offset(); }
    // True when a file was created (and will be removed on abort).
    bool created() const { return created_; }

    // Marks the image complete (see the life cycle above). On failure the
    // image is aborted as by abort().
    [[nodiscard]] Status finalize();
    // Whether finalize() may run after the caller moved on (the guest resumed):
    // the image is a regular file written in place, so a daemon killed before
    // finalize() leaves nothing but that file, which recovery finds by its name.
    // (A temporary file renamed over an old image would be found by nobody.)
    bool finalize_deferrable() const { return regular_ && write_path_ == path_ && !done_; }
    // Drops the image; idempotent.
    void abort();

private:
    SaveImageWriter() = default;

    std::string path_;        // the target the user named
    std::string write_path_;  // where the bytes go: path_ or a temporary next to it
    UniqueFd fd_;
    SaveImageHeader header_;
    bool created_ = false;    // write_path_ is a file we made
    bool regular_ = false;    // fsync/rename apply
    bool done_ = false;
};

// What a save image holds, with an fd positioned at the migration stream.
struct SaveImage {
    std::string path;
    SaveImageHeader header;
    std::string xml;
    std::optional<std::string> cookie;   // up to its NUL; none when cookieOffset is 0
    UniqueFd fd;
};

// Opens and checks a save image as libvirt's qemuSaveImageOpen: libvirt's
// errors for every header problem; a compressed image is refused with
// VIR_ERR_OPERATION_UNSUPPORTED (virtsnap reads raw and sparse images only).
[[nodiscard]] Result<SaveImage> open_save_image(const std::string &path);
// The same on an fd already opened at offset 0 (tests, callers with their own open).
[[nodiscard]] Result<SaveImage> read_save_image(UniqueFd fd, const std::string &path);

// libvirt's qemuSaveImageIsCorrupt: true when `path` cannot be read or its
// magic is not the complete one (an interrupted save).
bool save_image_is_corrupt(const std::string &path);

// The cookie libvirt writes when it has no guest CPU or slirp helper to record.
inline constexpr std::string_view kEmptySaveCookie = "<cookie>\n</cookie>\n";

}  // namespace virtsnap::qemu
