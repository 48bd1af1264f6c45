// moment_tree.hh - the parent/child tree of a domain's snapshots or checkpoints.
//
// libvirt keeps moments in a hash table plus first_child/sibling links below a
// "metaroot" (virdomainmomentobjlist.c). This is the same model, shaped for
// tens of thousands of moments:
//   * nodes live in one vector and are named by a MomentId (an index), so a node
//     costs a fixed handful of words plus its name (stored once, as the key of
//     the name index) and its payload;
//   * lookup by name is one hash probe;
//   * every walk is iterative (no recursion), so a 100,000-deep chain is fine;
//   * order is deterministic: "unordered" listings follow creation order
//     (libvirt follows its hash table); siblings run newest first, as
//     libvirt's prepended children do, and stay so across a reload.
//
// MomentTreeCore holds the relations and names; MomentTree<Payload> adds one
// payload per node (the parsed SnapshotDef / CheckpointDef, owned by the tree).
// A MomentId stays valid until its node is removed; ids of removed nodes are
// reused by later additions.
#pragma once

#include "util/result.hh"

#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace virtsnap {

using MomentId = uint32_t;
inline constexpr MomentId kNoMoment = UINT32_MAX;

// How one public API spells the list flags (snapshots and checkpoints use
// different values for the same groups). A zero member means the API has no
// such flag. Bits not named here are handed to the caller's predicate.
struct MomentListFlags {
    unsigned roots = 0;          // ROOTS without `from`, DESCENDANTS with it (same bit)
    unsigned topological = 0;
    unsigned leaves = 0;
    unsigned no_leaves = 0;
    unsigned metadata = 0;
    unsigned no_metadata = 0;
    // Groups filtered by the predicate (e.g. INACTIVE|ACTIVE|DISK_ONLY): a group
    // with every bit set is dropped before the predicate sees the flags.
    std::vector<unsigned> predicate_groups;
};

// VIR_DOMAIN_SNAPSHOT_LIST_* and VIR_DOMAIN_CHECKPOINT_LIST_* mappings.
const MomentListFlags &snapshot_list_flags();
const MomentListFlags &checkpoint_list_flags();

// What virDomainSnapshotFilter decides from a snapshot's state and location,
// for callers' predicates. `flags` are the predicate flags a listing passes.
enum class SnapshotStateClass { Inactive, Active, DiskOnly };
bool snapshot_filter_accepts(unsigned flags, SnapshotStateClass state, bool external);

// Decides whether a moment passes the predicate groups; only called with
// non-zero flags.
using MomentPredicate = std::function<bool(MomentId, unsigned flags)>;

class MomentTreeCore {
public:
    MomentTreeCore() = default;
    MomentTreeCore(const MomentTreeCore &) = delete;
    MomentTreeCore &operator=(const MomentTreeCore &) = delete;
    MomentTreeCore(MomentTreeCore &&) = default;
    MomentTreeCore &operator=(MomentTreeCore &&) = default;

    size_t size() const { return index_.size(); }
    bool empty() const { return index_.empty(); }

    MomentId find(std::string_view name) const;
    bool contains(std::string_view name) const { return find(name) != kNoMoment; }
    bool valid(MomentId id) const { return id < nodes_.size() && nodes_[id].name != nullptr; }
    const std::string &name(MomentId id) const { return *nodes_[id].name; }

    MomentId parent(MomentId id) const { return nodes_[id].parent; }
    size_t child_count(MomentId id) const { return nodes_[id].nchildren; }
    size_t root_count() const { return root_count_; }
    // Direct children / roots, newest first.
    std::vector<MomentId> children(MomentId id) const;
    std::vector<MomentId> roots() const;
    // Every descendant, parent before child (pre-order), the node itself excluded.
    std::vector<MomentId> descendants(MomentId id) const;
    size_t descendant_count(MomentId id) const;
    // Moments without children, in creation order.
    std::vector<MomentId> leaves() const;
    // All moments, parents before children.
    std::vector<MomentId> topological() const;
    // All moments in creation order (libvirt's "hash-table order").
    std::vector<MomentId> in_creation_order() const;
    // The end of the chain when the tree is one chain (virDomainMomentFindLeaf):
    // the only root has one child, which has one child... down to a leaf.
    MomentId single_chain_leaf() const;
    // True when `ancestor` is a proper ancestor of `id`.
    bool is_ancestor(MomentId ancestor, MomentId id) const;

    MomentId current() const { return current_; }
    void set_current(MomentId id) { current_ = id; }
    void clear_current() { current_ = kNoMoment; }

    // The checks libvirt runs before a (re)definition names `parent_name` as the
    // parent of `name` (virDomainMomentCheckCycles); an empty parent is a root.
    [[nodiscard]] Status check_parent(std::string_view name, std::string_view parent_name) const;
    // Re-links `id` first below `new_parent` (kNoMoment: make it a root), after
    // check_parent.
    [[nodiscard]] Status reparent(MomentId id, MomentId new_parent);

    // libvirt's list/num semantics (virDomainMomentObjListGetNames): `from` =
    // kNoMoment lists the whole domain (ROOTS: only roots), otherwise the
    // children of `from` (DESCENDANTS: all of them). Unknown bits go to the
    // predicate; the caller validates flags against its API first.
    std::vector<MomentId> list(MomentId from, unsigned flags, const MomentListFlags &bits,
                               const MomentPredicate &pred = {}) const;
    size_t count(MomentId from, unsigned flags, const MomentListFlags &bits,
                 const MomentPredicate &pred = {}) const;

    // Rebuilds the links after a bulk load (add_unlinked), as
    // virDomainMomentUpdateRelations: a missing parent makes a root, a cycle is
    // broken at the moment that closes it (in creation order). Both are logged
    // and clear current; returns false in that case. Linear time.
    bool rebuild_relations();
    // The moments that rebuild_relations turned into roots against their
    // recorded parent (callers fix their payload's parent name).
    const std::vector<MomentId> &orphaned() const { return orphaned_; }

protected:
    // Adds a node linked below `parent_name` (empty: root; unknown: root with a
    // warning, as virDomainMomentLinkParent).
    [[nodiscard]] Result<MomentId> add_node(std::string_view name, std::string_view parent_name);
    // Adds a node whose parent is resolved later by rebuild_relations().
    [[nodiscard]] Result<MomentId> add_node_unlinked(std::string_view name, std::string parent_name);
    // Unlinks and frees one node; its children move to its parent.
    // Returns the moved children.
    std::vector<MomentId> remove_node(MomentId id);
    // Frees a node and all its descendants; returns them, the node first.
    std::vector<MomentId> remove_subtree(MomentId id);
    void clear_nodes();

private:
    struct Node {
        const std::string *name = nullptr;  // key in index_; null for a free slot
        MomentId parent = kNoMoment;
        MomentId first_child = kNoMoment;
        MomentId prev_sibling = kNoMoment;
        MomentId next_sibling = kNoMoment;
        MomentId prev_created = kNoMoment;  // creation-order list, for listings
        MomentId next_created = kNoMoment;
        uint32_t nchildren = 0;
    };
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct Pending {
        MomentId id;
        std::string parent_name;
    };

    Result<MomentId> allocate(std::string_view name);
    void free_slot(MomentId id);
    // Sibling lists: the roots are the children of a virtual "metaroot".
    MomentId &first_child_of(MomentId p) { return p == kNoMoment ? first_root_ : nodes_[p].first_child; }
    MomentId first_child_of(MomentId p) const { return p == kNoMoment ? first_root_ : nodes_[p].first_child; }
    void link(MomentId id, MomentId parent);  // goes first among its siblings
    void unlink(MomentId id);
    void move_children(MomentId from, MomentId to);
    // Calls fn(id) for every descendant of `from` (kNoMoment: whole tree) in
    // pre-order; iterative.
    template <typename Fn>
    void walk_preorder(MomentId from, Fn &&fn) const;
    // Calls fn(id) for each moment `list` would return, in its order.
    template <typename Fn>
    void for_each_listed(MomentId from, unsigned flags, const MomentListFlags &bits, const MomentPredicate &pred,
                         Fn &&fn) const;

    std::vector<Node> nodes_;
    std::vector<MomentId> free_;
    std::unordered_map<std::string, MomentId, Hash, std::equal_to<>> index_;
    std::vector<Pending> pending_;
    std::vector<MomentId> orphaned_;
    MomentId first_root_ = kNoMoment;
    MomentId first_created_ = kNoMoment;
    MomentId last_created_ = kNoMoment;
    MomentId current_ = kNoMoment;
    uint32_t root_count_ = 0;
};

// The tree with one owned payload per moment.
template <typename Payload>
    requires std::default_initializable<Payload> && std::movable<Payload>
class MomentTree : public MomentTreeCore {
public:
    // Adds a moment below an existing parent (empty name: a root). Fails with
    // OPERATION_FAILED "domain moment %s already exists" on a duplicate name.
    [[nodiscard]] Result<MomentId> add(std::string_view name, std::string_view parent_name, Payload payload) {
        MomentId id = TRY(add_node(name, parent_name));
        store(id, std::move(payload));
        return id;
    }
    // For bulk loads: links later, in rebuild_relations().
    [[nodiscard]] Result<MomentId> add_unlinked(std::string_view name, std::string parent_name, Payload payload) {
        MomentId id = TRY(add_node_unlinked(name, std::move(parent_name)));
        store(id, std::move(payload));
        return id;
    }

    Payload &payload(MomentId id) { return payloads_[id]; }
    const Payload &payload(MomentId id) const { return payloads_[id]; }

    struct Removed {
        Payload payload;
        bool was_current = false;
        MomentId parent = kNoMoment;         // the children's new parent
        std::vector<MomentId> reparented;    // children now below `parent`
    };
    // Removes one moment; its children move to its parent. If it was current,
    // no moment is current afterwards (the caller picks the new one, as
    // qemuSnapshotDiscardMetadata makes the parent current).
    Removed remove(MomentId id) {
        Removed out;
        out.payload = std::move(payloads_[id]);
        payloads_[id] = Payload{};
        out.was_current = current() == id;
        out.parent = parent(id);
        out.reparented = remove_node(id);
        return out;
    }
    // Removes a moment and all its descendants; returns their payloads, the
    // moment first, then pre-order. Current is cleared if it was among them.
    std::vector<std::pair<std::string, Payload>> remove_with_descendants(MomentId id) {
        std::vector<std::pair<std::string, Payload>> out;
        for (MomentId d : subtree_ids(id)) out.emplace_back(name(d), std::exchange(payloads_[d], Payload{}));
        remove_subtree(id);
        return out;
    }
    void clear() {
        clear_nodes();
        payloads_.clear();
    }

private:
    std::vector<MomentId> subtree_ids(MomentId id) const {
        std::vector<MomentId> ids{id};
        auto rest = descendants(id);
        ids.insert(ids.end(), rest.begin(), rest.end());
        return ids;
    }
    void store(MomentId id, Payload payload) {
        if (payloads_.size() <= id) payloads_.resize(size_t(id) + 1);
        payloads_[id] = std::move(payload);
    }

    std::vector<Payload> payloads_;
};

}  // namespace virtsnap
