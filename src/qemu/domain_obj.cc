// domain_obj.cc - DomainObj construction and teardown.

#include "qemu/domain_obj.hh"
#include "qemu/domain_process.hh"

namespace virtsnap::qemu {

DomainObj::DomainObj(std::shared_ptr<const conf::DomainDef> d, bool is_persistent)
    : uuid(d->uuid), def(std::move(d)), persistent(is_persistent) {}

DomainObj::~DomainObj() = default;

}  // namespace virtsnap::qemu
