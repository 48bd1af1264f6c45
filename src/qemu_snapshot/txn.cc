// txn.cc - the undo stack of the snapshot state machines.

#include "qemu_snapshot/txn.hh"

#include "util/log.hh"

#define LOG_MODULE "qemu_snapshot.txn"

namespace virtsnap::qemu_snapshot {

Txn::~Txn() {
    if (!undos_.empty()) {
        VS_WARN("transaction dropped with %zu pending undos; rolling back", undos_.size());
        run_undos();
    }
}

void Txn::add_undo(std::string what, Undo undo) { undos_.emplace_back(std::move(what), std::move(undo)); }

void Txn::commit() { undos_.clear(); }

Error Txn::abort(Error first) {
    run_undos();
    return first;
}

std::vector<std::string> Txn::names() const {
    std::vector<std::string> out;
    for (const auto &u : undos_) out.push_back(u.first);
    return out;
}

void Txn::run_undos() {
    auto undos = std::move(undos_);
    undos_.clear();
    for (auto it = undos.rbegin(); it != undos.rend(); ++it) {
        VS_DEBUG("undo: %s", it->first.c_str());
        Status st = it->second();
        if (!st) VS_WARN("rollback step '%s' failed: %s", it->first.c_str(), st.error().message().c_str());
    }
}

}  // namespace virtsnap::qemu_snapshot
