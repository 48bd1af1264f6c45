// domain_registry.hh - every domain the daemon knows, found by name, UUID or id.
//
// The maps are guarded by one mutex held only for lookups and updates; callers
// get shared_ptrs so a domain stays valid while an API works on it even if it
// is undefined meanwhile. Ids are allocated increasingly, as libvirt does.
#pragma once

#include "qemu/domain_obj.hh"
#include "util/result.hh"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace virtsnap::qemu {

class DomainRegistry {
public:
    std::shared_ptr<DomainObj> find_by_name(const std::string &name) const;
    std::shared_ptr<DomainObj> find_by_uuid(const Uuid &uuid) const;
    std::shared_ptr<DomainObj> find_by_id(int id) const;
    std::vector<std::shared_ptr<DomainObj>> list() const;

    // Adds a domain; fails when the name or UUID is taken (libvirt's wording).
    [[nodiscard]] Status add(std::shared_ptr<DomainObj> dom);
    void remove(const Uuid &uuid);
    // Re-keys a domain after its name changed (define over an existing uuid).
    void rename(const std::shared_ptr<DomainObj> &dom, const std::string &old_name);

    int allocate_id();
    void set_id(const std::shared_ptr<DomainObj> &dom, int id);
    void clear_id(const std::shared_ptr<DomainObj> &dom);

private:
    mutable std::mutex mu_;
    std::map<std::string, std::shared_ptr<DomainObj>> by_name_;
    std::map<std::string, std::shared_ptr<DomainObj>> by_uuid_;  // key: uuid text
    std::map<int, std::shared_ptr<DomainObj>> by_id_;
    int next_id_ = 1;
};

}  // namespace virtsnap::qemu
