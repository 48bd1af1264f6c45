// moment_tree.cc - relations, walks and libvirt's list filters for the moment tree.

#include "conf/moment_tree.hh"

#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <algorithm>

#define LOG_MODULE "conf.moment_tree"

namespace virtsnap {

const MomentListFlags &snapshot_list_flags() {
    static const MomentListFlags flags = {
        .roots = VIR_DOMAIN_SNAPSHOT_LIST_ROOTS,
        .topological = VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL,
        .leaves = VIR_DOMAIN_SNAPSHOT_LIST_LEAVES,
        .no_leaves = VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES,
        .metadata = VIR_DOMAIN_SNAPSHOT_LIST_METADATA,
        .no_metadata = VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA,
        .predicate_groups = {VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE |
                                 VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY,
                             VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL | VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL},
    };
    return flags;
}

const MomentListFlags &checkpoint_list_flags() {
    // Checkpoints have no metadata or state groups in the public API.
    static const MomentListFlags flags = {
        .roots = VIR_DOMAIN_CHECKPOINT_LIST_ROOTS,
        .topological = VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL,
        .leaves = VIR_DOMAIN_CHECKPOINT_LIST_LEAVES,
        .no_leaves = VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES,
        .metadata = 0,
        .no_metadata = 0,
        .predicate_groups = {},
    };
    return flags;
}

bool snapshot_filter_accepts(unsigned flags, SnapshotStateClass state, bool external) {
    const unsigned status = VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE |
                            VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY;
    if (flags & status) {
        if (!(flags & VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE) && state == SnapshotStateClass::Inactive) return false;
        if (!(flags & VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY) && state == SnapshotStateClass::DiskOnly) return false;
        if (!(flags & VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE) && state == SnapshotStateClass::Active) return false;
    }
    if ((flags & VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL) && external) return false;
    if ((flags & VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL) && !external) return false;
    return true;
}

MomentId MomentTreeCore::find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? kNoMoment : it->second;
}

template <typename Fn>
void MomentTreeCore::walk_preorder(MomentId from, Fn &&fn) const {
    MomentId n = first_child_of(from);
    while (n != kNoMoment) {
        fn(n);
        if (nodes_[n].first_child != kNoMoment) {
            n = nodes_[n].first_child;
            continue;
        }
        // Climb until a node has a next sibling, stopping at `from`.
        for (;;) {
            if (nodes_[n].next_sibling != kNoMoment) {
                n = nodes_[n].next_sibling;
                break;
            }
            n = nodes_[n].parent;
            if (n == from) {
                n = kNoMoment;
                break;
            }
        }
    }
}

// ---- node storage ----

Result<MomentId> MomentTreeCore::allocate(std::string_view name) {
    if (index_.find(name) != index_.end())
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN,
                    "domain moment " + std::string(name) + " already exists");
    MomentId id;
    if (!free_.empty()) {
        id = free_.back();
        free_.pop_back();
    } else {
        if (nodes_.size() >= kNoMoment)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN, "too many domain moments");
        id = MomentId(nodes_.size());
        nodes_.emplace_back();
    }
    auto [it, inserted] = index_.emplace(std::string(name), id);
    (void)inserted;
    Node &n = nodes_[id];
    n = Node{};
    n.name = &it->first;  // keys of a node-based map never move
    n.prev_created = last_created_;
    if (last_created_ != kNoMoment) nodes_[last_created_].next_created = id;
    else first_created_ = id;
    last_created_ = id;
    return id;
}

void MomentTreeCore::free_slot(MomentId id) {
    Node &n = nodes_[id];
    if (n.prev_created != kNoMoment) nodes_[n.prev_created].next_created = n.next_created;
    else first_created_ = n.next_created;
    if (n.next_created != kNoMoment) nodes_[n.next_created].prev_created = n.prev_created;
    else last_created_ = n.prev_created;
    if (current_ == id) current_ = kNoMoment;
    index_.erase(index_.find(*n.name));
    n = Node{};
    free_.push_back(id);
}

void MomentTreeCore::clear_nodes() {
    nodes_.clear();
    free_.clear();
    index_.clear();
    pending_.clear();
    orphaned_.clear();
    first_root_ = first_created_ = last_created_ = current_ = kNoMoment;
    root_count_ = 0;
}

// ---- sibling lists ----

void MomentTreeCore::link(MomentId id, MomentId parent) {
    Node &n = nodes_[id];
    n.parent = parent;
    MomentId &first = first_child_of(parent);
    // As libvirt (virDomainMomentSetParent), a linked moment goes first, so
    // siblings run newest first; a reload links in creation order and keeps
    // that, where libvirt's order would follow its hash table.
    n.prev_sibling = kNoMoment;
    n.next_sibling = first;
    if (first != kNoMoment) nodes_[first].prev_sibling = id;
    first = id;
    if (parent == kNoMoment) root_count_++;
    else nodes_[parent].nchildren++;
}

void MomentTreeCore::unlink(MomentId id) {
    Node &n = nodes_[id];
    if (n.prev_sibling != kNoMoment) nodes_[n.prev_sibling].next_sibling = n.next_sibling;
    else first_child_of(n.parent) = n.next_sibling;
    if (n.next_sibling != kNoMoment) nodes_[n.next_sibling].prev_sibling = n.prev_sibling;
    if (n.parent == kNoMoment) root_count_--;
    else nodes_[n.parent].nchildren--;
    n.parent = n.prev_sibling = n.next_sibling = kNoMoment;
}

void MomentTreeCore::move_children(MomentId from, MomentId to) {
    // As virDomainMomentMoveChildren: the moved children keep their order,
    // ahead of the ones `to` already has.
    std::vector<MomentId> moved = children(from);
    for (MomentId child : moved) unlink(child);
    for (auto it = moved.rbegin(); it != moved.rend(); ++it) link(*it, to);
}

// ---- adding and removing ----

Result<MomentId> MomentTreeCore::add_node(std::string_view name, std::string_view parent_name) {
    MomentId parent = kNoMoment;
    if (!parent_name.empty()) {
        parent = find(parent_name);
        if (parent == kNoMoment)
            VS_WARN("moment %s lacks parent %s", std::string(name).c_str(), std::string(parent_name).c_str());
    }
    MomentId id = TRY(allocate(name));
    link(id, parent);
    return id;
}

Result<MomentId> MomentTreeCore::add_node_unlinked(std::string_view name, std::string parent_name) {
    MomentId id = TRY(allocate(name));
    pending_.push_back({id, std::move(parent_name)});
    return id;
}

std::vector<MomentId> MomentTreeCore::remove_node(MomentId id) {
    std::vector<MomentId> moved = children(id);
    MomentId parent = nodes_[id].parent;
    move_children(id, parent);
    unlink(id);
    free_slot(id);
    return moved;
}

std::vector<MomentId> MomentTreeCore::remove_subtree(MomentId id) {
    std::vector<MomentId> gone{id};
    walk_preorder(id, [&](MomentId d) { gone.push_back(d); });
    unlink(id);
    for (MomentId d : gone) free_slot(d);
    return gone;
}

// ---- walks ----

std::vector<MomentId> MomentTreeCore::children(MomentId id) const {
    std::vector<MomentId> out;
    out.reserve(nodes_[id].nchildren);
    for (MomentId c = nodes_[id].first_child; c != kNoMoment; c = nodes_[c].next_sibling) out.push_back(c);
    return out;
}

std::vector<MomentId> MomentTreeCore::roots() const {
    std::vector<MomentId> out;
    out.reserve(root_count_);
    for (MomentId c = first_root_; c != kNoMoment; c = nodes_[c].next_sibling) out.push_back(c);
    return out;
}

std::vector<MomentId> MomentTreeCore::descendants(MomentId id) const {
    std::vector<MomentId> out;
    walk_preorder(id, [&](MomentId d) { out.push_back(d); });
    return out;
}

size_t MomentTreeCore::descendant_count(MomentId id) const {
    size_t n = 0;
    walk_preorder(id, [&](MomentId) { n++; });
    return n;
}

std::vector<MomentId> MomentTreeCore::leaves() const {
    std::vector<MomentId> out;
    for (MomentId c = first_created_; c != kNoMoment; c = nodes_[c].next_created)
        if (nodes_[c].nchildren == 0) out.push_back(c);
    return out;
}

std::vector<MomentId> MomentTreeCore::topological() const {
    std::vector<MomentId> out;
    out.reserve(size());
    walk_preorder(kNoMoment, [&](MomentId d) { out.push_back(d); });
    return out;
}

std::vector<MomentId> MomentTreeCore::in_creation_order() const {
    std::vector<MomentId> out;
    out.reserve(size());
    for (MomentId c = first_created_; c != kNoMoment; c = nodes_[c].next_created) out.push_back(c);
    return out;
}

MomentId MomentTreeCore::single_chain_leaf() const {
    if (root_count_ != 1) return kNoMoment;
    MomentId n = first_root_;
    while (nodes_[n].nchildren == 1) n = nodes_[n].first_child;
    return nodes_[n].nchildren == 0 ? n : kNoMoment;
}

bool MomentTreeCore::is_ancestor(MomentId ancestor, MomentId id) const {
    for (MomentId p = nodes_[id].parent; p != kNoMoment; p = nodes_[p].parent)
        if (p == ancestor) return true;
    return false;
}

// ---- parent checks ----

Status MomentTreeCore::check_parent(std::string_view name, std::string_view parent_name) const {
    if (parent_name.empty()) return ok();
    if (name == parent_name)
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN,
                    "cannot set moment " + std::string(name) + " as its own parent");
    MomentId other = find(parent_name);
    if (other == kNoMoment)
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN,
                    "parent " + std::string(parent_name) + " for moment " + std::string(name) + " not found");
    MomentId self = find(name);
    if (self == kNoMoment) return ok();  // a new moment cannot close a cycle
    for (; nodes_[other].parent != kNoMoment; other = nodes_[other].parent)
        if (nodes_[other].parent == self)
            return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN,
                        "parent " + *nodes_[other].name + " would create cycle to " + std::string(name));
    return ok();
}

Status MomentTreeCore::reparent(MomentId id, MomentId new_parent) {
    TRY(check_parent(name(id), new_parent == kNoMoment ? std::string_view() : std::string_view(name(new_parent))));
    // Even below the same parent, as libvirt's redefine drops and re-links
    // the replaced moment: it moves to the front of its siblings.
    unlink(id);
    link(id, new_parent);
    return ok();
}

// ---- listing ----

template <typename Fn>
void MomentTreeCore::for_each_listed(MomentId from, unsigned flags, const MomentListFlags &bits,
                                     const MomentPredicate &pred, Fn &&fn) const {
    // ROOTS and DESCENDANTS share a bit with opposite meanings: without `from`
    // the bit narrows to roots, with `from` it widens to all descendants.
    bool descend = from == kNoMoment ? !(flags & bits.roots) : (flags & bits.roots) != 0;
    bool topological = (flags & bits.topological) != 0;
    bool leaves = bits.leaves && (flags & bits.leaves);
    bool no_leaves = bits.no_leaves && (flags & bits.no_leaves);
    bool metadata = bits.metadata && (flags & bits.metadata);
    bool no_metadata = bits.no_metadata && (flags & bits.no_metadata);
    // Every moment virtsnap knows has metadata: NO_METADATA alone lists none.
    if (no_metadata && !metadata) return;

    unsigned known = bits.roots | bits.topological | bits.leaves | bits.no_leaves | bits.metadata | bits.no_metadata;
    unsigned rest = flags & ~known;
    for (unsigned group : bits.predicate_groups)
        if ((rest & group) == group) rest &= ~group;

    // As libvirt, LEAVES and NO_LEAVES together exclude everything: the
    // leaves group is not dropped when both bits are set.
    auto visit = [&](MomentId id) {
        if (leaves && nodes_[id].nchildren) return;
        if (no_leaves && !nodes_[id].nchildren) return;
        if (rest && pred && !pred(id, rest)) return;
        fn(id);
    };

    if (!descend) {
        for (MomentId c = first_child_of(from); c != kNoMoment; c = nodes_[c].next_sibling) visit(c);
    } else if (from != kNoMoment || topological) {
        walk_preorder(from, visit);
    } else {
        for (MomentId c = first_created_; c != kNoMoment; c = nodes_[c].next_created) visit(c);
    }
}

std::vector<MomentId> MomentTreeCore::list(MomentId from, unsigned flags, const MomentListFlags &bits,
                                           const MomentPredicate &pred) const {
    std::vector<MomentId> out;
    for_each_listed(from, flags, bits, pred, [&](MomentId id) { out.push_back(id); });
    return out;
}

size_t MomentTreeCore::count(MomentId from, unsigned flags, const MomentListFlags &bits,
                             const MomentPredicate &pred) const {
    unsigned filters = flags & ~(bits.roots | bits.topological | bits.metadata);
    if (!filters) {
        // Unfiltered counts need no walk except for a subtree.
        bool descend = from == kNoMoment ? !(flags & bits.roots) : (flags & bits.roots) != 0;
        if (from == kNoMoment) return descend ? size() : root_count_;
        if (!descend) return nodes_[from].nchildren;
    }
    size_t n = 0;
    for_each_listed(from, flags, bits, pred, [&](MomentId) { n++; });
    return n;
}

// ---- bulk relations ----

bool MomentTreeCore::rebuild_relations() {
    bool consistent = true;
    orphaned_.clear();
    const uint32_t slots = uint32_t(nodes_.size());
    std::vector<MomentId> parent(slots, kNoMoment);
    for (MomentId c = first_created_; c != kNoMoment; c = nodes_[c].next_created) parent[c] = nodes_[c].parent;
    for (const Pending &p : pending_) {
        if (!valid(p.id) || p.parent_name.empty()) continue;
        MomentId found = find(p.parent_name);
        if (found == kNoMoment) {
            VS_WARN("moment %s lacks parent %s", nodes_[p.id].name->c_str(), p.parent_name.c_str());
            consistent = false;
            orphaned_.push_back(p.id);
        }
        parent[p.id] = found;
    }
    pending_.clear();
    pending_.shrink_to_fit();

    // Cycle detection on the parent graph: each moment has at most one parent,
    // so following parents from a moment either ends at a root, joins a path
    // already known to end at a root, or loops back into the current path.
    // libvirt links moments one by one and refuses the link that would close
    // a cycle; that is the cycle member visited last, so break it there.
    std::vector<uint32_t> position(slots, 0);
    std::vector<uint8_t> state(slots, 0);  // 0 unseen, 1 on the current path, 2 done
    uint32_t pos = 0;
    for (MomentId c = first_created_; c != kNoMoment; c = nodes_[c].next_created) position[c] = pos++;
    std::vector<MomentId> path;
    for (MomentId start = first_created_; start != kNoMoment; start = nodes_[start].next_created) {
        path.clear();
        MomentId v = start;
        while (v != kNoMoment && state[v] == 0) {
            state[v] = 1;
            path.push_back(v);
            v = parent[v];
        }
        if (v != kNoMoment && state[v] == 1) {
            auto first = std::find(path.begin(), path.end(), v);
            MomentId closing = *std::max_element(first, path.end(), [&](MomentId a, MomentId b) {
                return position[a] < position[b];
            });
            VS_WARN("moment %s in circular chain", nodes_[closing].name->c_str());
            consistent = false;
            parent[closing] = kNoMoment;
            orphaned_.push_back(closing);
        }
        for (MomentId p : path) state[p] = 2;
    }

    // Relink everything in creation order: siblings end up newest first.
    first_root_ = kNoMoment;
    root_count_ = 0;
    for (MomentId c = first_created_; c != kNoMoment; c = nodes_[c].next_created) {
        Node &n = nodes_[c];
        n.parent = n.first_child = n.prev_sibling = n.next_sibling = kNoMoment;
        n.nchildren = 0;
    }
    for (MomentId c = first_created_; c != kNoMoment; c = nodes_[c].next_created) link(c, parent[c]);
    if (!consistent) current_ = kNoMoment;
    return consistent;
}

}  // namespace virtsnap
