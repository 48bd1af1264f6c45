// image_refs.hh - which disk images are still needed, and what sits on them.
//
// Before a snapshot deletion unlinks or commits into an image it asks this
// index. An image is referenced when it appears in any of:
//   * the persistent and the live definition's disk chains,
//   * every remaining snapshot's stored <domain> and <inactiveDomain> chains
//     and the overlays its external disks name,
//   * the actual backing chains of all of the above, as `qemu-img info
//     --backing-chain -U` reports them (an image's own header is the truth
//     when the XML does not spell the chain out).
// The same walk records, for each image, the images whose backing file it is
// (its dependents): committing into an image with more than one dependent
// would change what the other branch sees, which is how libvirt 9.0 lost data.
//
// Paths are compared in canonical form (symlinks and ".." resolved).
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_def.hh"
#include "util/result.hh"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

class ImageRefs {
public:
    // Adds every local image of `def`'s disk chains (and their actual chains).
    void add_domain(const conf::DomainDef &def);
    // Adds a snapshot's <domain>, <inactiveDomain> and external overlays.
    void add_snapshot(const conf::SnapshotDef &snap);
    // Adds one image and its actual backing chain.
    void add_image(const std::string &path);

    bool referenced(const std::string &path) const;
    // Images whose backing file is `path`.
    std::set<std::string> dependents(const std::string &path) const;
    // Images used as the top of a disk by some definition.
    bool is_top(const std::string &path) const;

    static std::string canonical(const std::string &path);

private:
    void add_chain(const conf::StorageSource &top, bool top_layer);
    void add_edge(const std::string &image, const std::string &backing);

    std::set<std::string> refs_;
    std::set<std::string> tops_;
    std::set<std::string> probed_;
    std::map<std::string, std::set<std::string>> dependents_;
};

}  // namespace virtsnap::qemu_snapshot
