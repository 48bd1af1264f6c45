// image_refs.cc - the index of images still needed (see the header).

#include "qemu_snapshot/image_refs.hh"

#include "qemu/qemu_img.hh"
#include "util/log.hh"

#include <climits>
#include <cstdlib>

#define LOG_MODULE "qemu_snapshot.image_refs"

namespace virtsnap::qemu_snapshot {

std::string ImageRefs::canonical(const std::string &path) {
    if (path.empty()) return path;
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf)) return buf;
    return path;
}

void ImageRefs::add_edge(const std::string &image, const std::string &backing) {
    if (image.empty() || backing.empty()) return;
    dependents_[canonical(backing)].insert(canonical(image));
}

void ImageRefs::add_image(const std::string &path) {
    if (path.empty()) return;
    std::string p = canonical(path);
    refs_.insert(p);
    if (!probed_.insert(p).second) return;
    auto chain = qemu::qemu_img::info_chain(p, "", true);
    if (!chain) {
        VS_DEBUG("cannot read chain of %s: %s", p.c_str(), chain.error().message().c_str());
        return;
    }
    for (const auto &img : *chain) {
        std::string name = canonical(img.filename);
        refs_.insert(name);
        probed_.insert(name);
        if (!img.full_backing_filename.empty()) {
            refs_.insert(canonical(img.full_backing_filename));
            add_edge(name, img.full_backing_filename);
        }
    }
}

void ImageRefs::add_chain(const conf::StorageSource &top, bool top_layer) {
    const conf::StorageSource *prev = nullptr;
    for (const conf::StorageSource *s = &top; s; s = s->backing.get()) {
        if (!s->is_local() || s->path.empty()) break;
        if (top_layer && s == &top) tops_.insert(canonical(s->path));
        add_image(s->path);
        if (prev) add_edge(prev->path, s->path);
        prev = s;
    }
}

void ImageRefs::add_domain(const conf::DomainDef &def) {
    for (const auto &d : def.disks) add_chain(d.src, true);
}

void ImageRefs::add_snapshot(const conf::SnapshotDef &snap) {
    if (snap.domain) add_domain(*snap.domain);
    if (snap.inactive_domain) add_domain(*snap.inactive_domain);
    for (const auto &d : snap.disks)
        if (d.snapshot == conf::SnapshotLocation::External && !d.path.empty()) add_image(d.path);
}

bool ImageRefs::referenced(const std::string &path) const { return refs_.count(canonical(path)) > 0; }

bool ImageRefs::is_top(const std::string &path) const { return tops_.count(canonical(path)) > 0; }

std::set<std::string> ImageRefs::dependents(const std::string &path) const {
    auto it = dependents_.find(canonical(path));
    return it == dependents_.end() ? std::set<std::string>{} : it->second;
}

}  // namespace virtsnap::qemu_snapshot
