// domain_registry.cc - name/UUID/id indexes over DomainObj.

#include "qemu/domain_registry.hh"

namespace virtsnap::qemu {

std::shared_ptr<DomainObj> DomainRegistry::find_by_name(const std::string &name) const {
    std::lock_guard lock(mu_);
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

std::shared_ptr<DomainObj> DomainRegistry::find_by_uuid(const Uuid &uuid) const {
    std::lock_guard lock(mu_);
    auto it = by_uuid_.find(uuid.str());
    return it == by_uuid_.end() ? nullptr : it->second;
}

std::shared_ptr<DomainObj> DomainRegistry::find_by_id(int id) const {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<DomainObj>> DomainRegistry::list() const {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<DomainObj>> out;
    out.reserve(by_name_.size());
    for (const auto &[_, d] : by_name_) out.push_back(d);
    return out;
}

Status DomainRegistry::add(std::shared_ptr<DomainObj> dom) {
    std::string name;
    {
        std::lock_guard dl(dom->mu);
        name = dom->name();
    }
    std::lock_guard lock(mu_);
    if (auto it = by_uuid_.find(dom->uuid.str()); it != by_uuid_.end())
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                    "domain '" + name + "' already exists with uuid " + dom->uuid.str());
    if (auto it = by_name_.find(name); it != by_name_.end())
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                    "domain '" + name + "' is already defined with uuid " + it->second->uuid.str());
    by_name_[name] = dom;
    by_uuid_[dom->uuid.str()] = std::move(dom);
    return ok();
}

void DomainRegistry::remove(const Uuid &uuid) {
    std::lock_guard lock(mu_);
    auto it = by_uuid_.find(uuid.str());
    if (it == by_uuid_.end()) return;
    for (auto n = by_name_.begin(); n != by_name_.end(); ++n)
        if (n->second == it->second) { by_name_.erase(n); break; }
    for (auto i = by_id_.begin(); i != by_id_.end(); ++i)
        if (i->second == it->second) { by_id_.erase(i); break; }
    by_uuid_.erase(it);
}

void DomainRegistry::rename(const std::shared_ptr<DomainObj> &dom, const std::string &old_name) {
    std::string name;
    {
        std::lock_guard dl(dom->mu);
        name = dom->name();
    }
    std::lock_guard lock(mu_);
    by_name_.erase(old_name);
    by_name_[name] = dom;
}

int DomainRegistry::allocate_id() {
    std::lock_guard lock(mu_);
    return next_id_++;
}

void DomainRegistry::set_id(const std::shared_ptr<DomainObj> &dom, int id) {
    std::lock_guard lock(mu_);
    by_id_[id] = dom;
    if (id >= next_id_) next_id_ = id + 1;
}

void DomainRegistry::clear_id(const std::shared_ptr<DomainObj> &dom) {
    std::lock_guard lock(mu_);
    for (auto i = by_id_.begin(); i != by_id_.end(); ++i)
        if (i->second == dom) { by_id_.erase(i); break; }
}

}  // namespace virtsnap::qemu
