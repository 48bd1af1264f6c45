// save_image.cc - libvirt 9.0's QEMU save image: header codec, writer, reader.

#include "qemu/save_image.hh"

#include "util/file.hh"

#define LOG_MODULE "qemu.save_image"
#include "util/log.hh"

#include <cerrno>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace virtsnap::qemu {

namespace {

constexpr virErrorDomain kDomain = VIR_FROM_QEMU;
// No real image has more than a few hundred KiB of XML and cookie; a larger
// data length is a damaged header, not a reason to allocate gigabytes.
constexpr uint32_t kMaxDataLen = 64u * 1024 * 1024;

// Header field offsets (virQEMUSaveHeader).
constexpr size_t kOffVersion = 16, kOffDataLen = 20, kOffWasRunning = 24, kOffCompressed = 28,
                 kOffCookieOffset = 32;

void put_u32(unsigned char *p, uint32_t v) {
    p[0] = uint8_t(v);
    p[1] = uint8_t(v >> 8);
    p[2] = uint8_t(v >> 16);
    p[3] = uint8_t(v >> 24);
}

uint32_t get_u32(const unsigned char *p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

uint32_t bswap(uint32_t v) { return __builtin_bswap32(v); }

Error operation_failed(std::string text) { return make_error(VIR_ERR_OPERATION_FAILED, kDomain, std::move(text)); }

// write(2) until done; false with errno set on failure (ENOSPC for a short write).
bool write_all(int fd, const void *data, size_t len) {
    const char *p = static_cast<const char *>(data);
    while (len > 0) {
        ssize_t n = ::write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (n == 0) {
            errno = ENOSPC;
            return false;
        }
        p += n;
        len -= size_t(n);
    }
    return true;
}

// read(2) until `len` bytes or EOF; returns how many were read, -1 on error.
ssize_t read_full(int fd, void *data, size_t len) {
    char *p = static_cast<char *>(data);
    size_t got = 0;
    while (got < len) {
        ssize_t n = ::read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) break;
        got += size_t(n);
    }
    return ssize_t(got);
}

}  // namespace

std::string_view save_image_format_name(uint32_t format) {
    switch (format) {
    case SaveImageHeader::kRaw: return "raw";
    case SaveImageHeader::kGzip: return "gzip";
    case SaveImageHeader::kBzip2: return "bzip2";
    case SaveImageHeader::kXz: return "xz";
    case SaveImageHeader::kLzop: return "lzop";
    case SaveImageHeader::kZstd: return "zstd";
    case SaveImageHeader::kSparse: return "sparse";
    default: return "";
    }
}

// ---- header ----

std::array<unsigned char, SaveImageHeader::kSize> SaveImageHeader::encode() const {
    std::array<unsigned char, kSize> out{};
    std::string_view magic = complete ? kMagicComplete : kMagicPartial;
    std::memcpy(out.data(), magic.data(), magic.size());
    put_u32(out.data() + kOffVersion, version);
    put_u32(out.data() + kOffDataLen, data_len);
    put_u32(out.data() + kOffWasRunning, was_running);
    put_u32(out.data() + kOffCompressed, compressed);
    put_u32(out.data() + kOffCookieOffset, cookie_offset);
    return out;
}

Result<SaveImageHeader> SaveImageHeader::decode(const unsigned char *bytes, size_t len) {
    if (len < kSize) return fail(operation_failed("failed to read qemu header"));
    SaveImageHeader h;
    if (std::memcmp(bytes, kMagicComplete.data(), kMagicComplete.size()) != 0) {
        if (std::memcmp(bytes, kMagicPartial.data(), kMagicPartial.size()) == 0)
            return fail(operation_failed("save image is incomplete"));
        return fail(operation_failed("image magic is incorrect"));
    }
    h.complete = true;
    h.version = get_u32(bytes + kOffVersion);
    h.data_len = get_u32(bytes + kOffDataLen);
    h.was_running = get_u32(bytes + kOffWasRunning);
    h.compressed = get_u32(bytes + kOffCompressed);
    h.cookie_offset = get_u32(bytes + kOffCookieOffset);
    if (h.version > kVersion) {
        // Written on a host of the other byte order.
        h.version = bswap(h.version);
        h.data_len = bswap(h.data_len);
        h.was_running = bswap(h.was_running);
        h.compressed = bswap(h.compressed);
        h.cookie_offset = bswap(h.cookie_offset);
    }
    if (h.version > kVersion)
        return fail(operation_failed("image version is not supported (" + std::to_string(h.version) + " > " +
                                     std::to_string(kVersion) + ")"));
    if (h.data_len == 0) return fail(operation_failed("invalid header data length"));
    return h;
}

// ---- writer ----

SaveImageWriter::SaveImageWriter(SaveImageWriter &&o) noexcept
    : path_(std::move(o.path_)), write_path_(std::move(o.write_path_)), fd_(std::move(o.fd_)),
      header_(o.header_), created_(o.created_), regular_(o.regular_), done_(o.done_) {
    o.done_ = true;
    o.created_ = false;
}

SaveImageWriter::~SaveImageWriter() { abort(); }

Result<SaveImageWriter> SaveImageWriter::create(const std::string &path, const Options &options) {
    if (options.xml.find('\0') != std::string::npos ||
        (options.cookie && options.cookie->find('\0') != std::string::npos))
        return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "save image metadata contains a NUL byte");
    uint64_t xml_len = options.xml.size() + 1;
    uint64_t cookie_len = options.cookie ? options.cookie->size() + 1 : 0;
    if (xml_len + cookie_len + SaveImageHeader::kPadding > kMaxDataLen)
        return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "domain XML too large for a save image");

    SaveImageWriter w;
    w.path_ = path;
    w.header_.complete = false;
    w.header_.version = SaveImageHeader::kVersion;
    w.header_.data_len = uint32_t(xml_len + cookie_len + SaveImageHeader::kPadding);
    w.header_.was_running = options.was_running ? 1 : 0;
    if (options.format != SaveImageHeader::kRaw && options.format != SaveImageHeader::kSparse)
        return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "save image format " + std::to_string(options.format) + " cannot be written");
    w.header_.compressed = options.format;
    w.header_.cookie_offset = options.cookie ? uint32_t(xml_len) : 0;

    struct stat sb;
    bool exists = ::stat(path.c_str(), &sb) == 0;
    if (exists && S_ISREG(sb.st_mode)) {
        // Keep the old image until the new one is complete.
        std::string tmpl = file::dirname(path) + "/." + file::basename(path) + ".vspart-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        int fd = ::mkostemp(buf.data(), O_CLOEXEC);
        if (fd < 0) return fail(make_system_error(kDomain, errno, "Failed to create file '" + path + "'"));
        w.fd_.reset(fd);
        w.write_path_ = buf.data();
        w.created_ = true;
        w.regular_ = true;
        if (::fchmod(fd, options.mode) < 0)
            return fail(make_system_error(kDomain, errno, "Failed to create file '" + path + "'"));
    } else if (exists && options.format == SaveImageHeader::kSparse) {
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, kDomain,
                    "a sparse memory image needs a regular file, and '" + path + "' is not one");
    } else if (exists) {
        // A device or FIFO: written in place, never removed.
        int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return fail(make_system_error(kDomain, errno, "Failed to open file '" + path + "'"));
        w.fd_.reset(fd);
        w.write_path_ = path;
        w.regular_ = S_ISBLK(sb.st_mode);
    } else {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, options.mode);
        if (fd < 0) return fail(make_system_error(kDomain, errno, "Failed to create file '" + path + "'"));
        w.fd_.reset(fd);
        w.write_path_ = path;
        w.created_ = true;
        w.regular_ = true;
        // The umask must not widen or narrow what libvirt creates.
        (void)::fchmod(fd, options.mode);
    }

    auto hdr = w.header_.encode();
    if (!write_all(w.fd(), hdr.data(), hdr.size()))
        return fail(make_system_error(kDomain, errno, "failed to write header to domain save file '" + path + "'"));
    if (!write_all(w.fd(), options.xml.c_str(), xml_len))
        return fail(make_system_error(kDomain, errno, "failed to write domain xml to '" + path + "'"));
    if (options.cookie && !write_all(w.fd(), options.cookie->c_str(), cookie_len))
        return fail(make_system_error(kDomain, errno, "failed to write cookie to '" + path + "'"));
    std::vector<char> zeros(SaveImageHeader::kPadding, 0);
    if (!write_all(w.fd(), zeros.data(), zeros.size()))
        return fail(make_system_error(kDomain, errno, "failed to write padding to '" + path + "'"));
    VS_DEBUG("save image %s: header written, stream at %llu", path.c_str(),
             (unsigned long long)w.stream_offset());
    return w;
}

Status SaveImageWriter::finalize() {
    if (done_) return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "save image '" + path_ + "' already closed");
    auto fail_with = [&](Error e) -> Status {
        abort();
        return fail(std::move(e));
    };
    if (regular_ && ::fsync(fd()) < 0)
        return fail_with(make_system_error(kDomain, errno, "unable to sync file '" + path_ + "'"));
    SaveImageHeader complete = header_;
    complete.complete = true;
    auto hdr = complete.encode();
    if (::pwrite(fd(), hdr.data(), hdr.size(), 0) != ssize_t(hdr.size()))
        return fail_with(
            make_system_error(kDomain, errno ? errno : ENOSPC,
                              "failed to write header to domain save file '" + path_ + "'"));
    if (regular_ && ::fsync(fd()) < 0)
        return fail_with(make_system_error(kDomain, errno, "unable to sync file '" + path_ + "'"));
    if (::close(fd_.release()) < 0)
        return fail_with(make_system_error(kDomain, errno, "unable to close " + path_));
    if (write_path_ != path_) {
        if (::rename(write_path_.c_str(), path_.c_str()) < 0)
            return fail_with(make_system_error(kDomain, errno,
                                               "cannot rename file '" + write_path_ + "' as '" + path_ + "'"));
        created_ = false;
    }
    header_ = complete;
    done_ = true;
    if (regular_) {
        Status st = file::sync_dir(file::dirname(path_), kDomain);
        if (!st) VS_WARN("%s", st.error().message().c_str());
    }
    return ok();
}

void SaveImageWriter::abort() {
    if (done_) return;
    done_ = true;
    fd_.reset();
    if (created_ && ::unlink(write_path_.c_str()) < 0 && errno != ENOENT)
        VS_WARN("cannot remove partial save image '%s': %s", write_path_.c_str(), std::strerror(errno));
    created_ = false;
}

// ---- reader ----

Result<SaveImage> open_save_image(const std::string &path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return fail(make_system_error(kDomain, errno, "Failed to open file '" + path + "'"));
    return read_save_image(std::move(fd), path);
}

Result<SaveImage> read_save_image(UniqueFd fd, const std::string &path) {
    unsigned char raw[SaveImageHeader::kSize];
    ssize_t n = read_full(fd.get(), raw, sizeof raw);
    SaveImageHeader h = TRY(SaveImageHeader::decode(raw, n < 0 ? 0 : size_t(n)));

    if (h.data_len > kMaxDataLen) return fail(operation_failed("invalid header data length"));
    uint32_t xml_len = h.cookie_offset ? h.cookie_offset : h.data_len;
    if (xml_len > h.data_len) return fail(operation_failed("invalid header data length"));
    uint32_t cookie_len = h.data_len - xml_len;

    std::string xml(xml_len, '\0');
    if (read_full(fd.get(), xml.data(), xml_len) != ssize_t(xml_len))
        return fail(operation_failed("failed to read domain XML"));
    auto nul = xml.find('\0');
    if (nul == std::string::npos) return fail(operation_failed("failed to read domain XML"));
    xml.resize(nul);

    std::optional<std::string> cookie;
    if (cookie_len > 0) {
        std::string area(cookie_len, '\0');
        if (read_full(fd.get(), area.data(), cookie_len) != ssize_t(cookie_len))
            return fail(operation_failed("failed to read cookie"));
        // Without a cookie offset the area is padding only.
        if (h.cookie_offset) {
            auto end = area.find('\0');
            if (end == std::string::npos) return fail(operation_failed("failed to read cookie"));
            area.resize(end);
            cookie = std::move(area);
        }
    }

    // Compression exists only in version 2 headers.
    if (h.version == 2 && h.compressed != SaveImageHeader::kRaw && h.compressed != SaveImageHeader::kSparse) {
        std::string_view name = save_image_format_name(h.compressed);
        if (name.empty())
            return fail(operation_failed("Invalid compressed save format " + std::to_string(h.compressed)));
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, kDomain,
                    "save image '" + path + "' is compressed with " + std::string(name) +
                        "; only raw and sparse save images are supported");
    }

    SaveImage img;
    img.path = path;
    img.header = h;
    img.xml = std::move(xml);
    img.cookie = std::move(cookie);
    img.fd = std::move(fd);
    return img;
}

bool save_image_is_corrupt(const std::string &path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return true;
    unsigned char raw[SaveImageHeader::kSize];
    if (read_full(fd.get(), raw, sizeof raw) != ssize_t(sizeof raw)) return true;
    return std::memcmp(raw, SaveImageHeader::kMagicComplete.data(), SaveImageHeader::kMagicComplete.size()) != 0;
}

}  // namespace virtsnap::qemu
