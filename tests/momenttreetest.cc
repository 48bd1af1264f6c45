// momenttreetest.cc - unit tests for the moment tree: relations, libvirt's
// error wording, every list flag group combination on a fixed tree, bulk
// relation rebuilding, and 100,000-moment chains, fans and random trees.

#include "tap.hh"

#include "conf/moment_tree.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <malloc.h>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

using namespace virtsnap;

namespace {

struct Snap {
    SnapshotStateClass state = SnapshotStateClass::Inactive;
    bool external = false;
};
using Tree = MomentTree<std::unique_ptr<Snap>>;

std::string names(const MomentTreeCore &t, const std::vector<MomentId> &ids) {
    std::string out;
    for (MomentId id : ids) {
        if (!out.empty()) out += ' ';
        out += t.name(id);
    }
    return out;
}

// Sorted, for comparisons where only the set matters.
std::string name_set(const MomentTreeCore &t, const std::vector<MomentId> &ids) {
    std::vector<std::string> v;
    for (MomentId id : ids) v.push_back(t.name(id));
    std::sort(v.begin(), v.end());
    std::string out;
    for (auto &s : v) out += s;
    return out;
}

// The fixed tree (creation order a..g):
//   a  shutoff  internal         g  disk-snapshot external (root, leaf)
//   +- b  running  internal
//   |  +- d  disk-snapshot external (leaf)
//   |  +- e  running  external     (leaf)
//   +- c  shutoff  internal
//      +- f  paused  internal      (leaf)
void build_fixed(Tree &t) {
    struct Row {
        const char *name, *parent;
        SnapshotStateClass state;
        bool external;
    } rows[] = {
        {"a", "", SnapshotStateClass::Inactive, false}, {"b", "a", SnapshotStateClass::Active, false},
        {"c", "a", SnapshotStateClass::Inactive, false}, {"d", "b", SnapshotStateClass::DiskOnly, true},
        {"e", "b", SnapshotStateClass::Active, true},    {"f", "c", SnapshotStateClass::Active, false},
        {"g", "", SnapshotStateClass::DiskOnly, true},
    };
    for (const Row &r : rows) {
        auto added = t.add(r.name, r.parent, std::make_unique<Snap>(Snap{r.state, r.external}));
        if (!added) std::abort();
    }
}

MomentPredicate snapshot_predicate(const Tree &t) {
    return [&t](MomentId id, unsigned flags) {
        const Snap &s = *t.payload(id);
        return snapshot_filter_accepts(flags, s.state, s.external);
    };
}

void test_relations(test::Tap &tap) {
    Tree t;
    build_fixed(t);
    tap.eq(t.size(), size_t(7), "fixed tree has 7 moments");
    tap.eq(names(t, t.roots()), std::string("g a"), "roots, newest first");
    tap.eq(names(t, t.children(t.find("a"))), std::string("c b"), "children of a, newest first");
    tap.eq(names(t, t.children(t.find("b"))), std::string("e d"), "children of b");
    tap.eq(names(t, t.descendants(t.find("a"))), std::string("c f b e d"), "descendants of a, pre-order");
    tap.eq(t.descendant_count(t.find("a")), size_t(5), "descendant count of a");
    tap.eq(names(t, t.leaves()), std::string("d e f g"), "leaves");
    tap.eq(names(t, t.topological()), std::string("g a c f b e d"), "topological order");
    tap.eq(names(t, t.in_creation_order()), std::string("a b c d e f g"), "creation order");
    tap.eq(t.name(t.parent(t.find("f"))), std::string("c"), "parent of f");
    tap.eq(t.parent(t.find("a")), kNoMoment, "a has no parent");
    tap.ok(t.find("zz") == kNoMoment && !t.contains("zz"), "unknown name not found");
    tap.ok(t.is_ancestor(t.find("a"), t.find("f")) && !t.is_ancestor(t.find("b"), t.find("f")), "is_ancestor");
    tap.eq(t.single_chain_leaf(), kNoMoment, "two roots: no single chain leaf");

    auto dup = t.add("b", "a", std::make_unique<Snap>());
    tap.ok(!dup && dup.error().code == VIR_ERR_OPERATION_FAILED && dup.error().domain == VIR_FROM_DOMAIN,
           "duplicate name refused with OPERATION_FAILED");
    if (!dup) tap.eq(dup.error().message(), std::string("operation failed: domain moment b already exists"),
                     "duplicate wording");
    tap.eq(t.size(), size_t(7), "failed add leaves the tree unchanged");

    auto own = t.check_parent("a", "a");
    tap.ok(!own && own.error().code == VIR_ERR_INVALID_ARG, "own parent refused");
    if (!own) tap.eq(own.error().message(), std::string("invalid argument: cannot set moment a as its own parent"),
                     "own-parent wording");
    auto missing = t.check_parent("x", "zz");
    if (!missing) tap.eq(missing.error().message(), std::string("invalid argument: parent zz for moment x not found"),
                         "missing-parent wording");
    else tap.ok(false, "missing parent refused");
    auto cycle = t.check_parent("a", "d");
    if (!cycle) tap.eq(cycle.error().message(), std::string("invalid argument: parent b would create cycle to a"),
                       "cycle wording names the ancestor that points back");
    else tap.ok(false, "cycle refused");
    tap.ok(bool(t.check_parent("g", "f")), "moving a root below another tree is fine");
    tap.ok(bool(t.check_parent("new", "d")), "a new moment below any existing one is fine");
    tap.ok(bool(t.check_parent("b", "")), "no parent is always fine");

    // Re-parent c below b: as libvirt's re-link, it goes first.
    tap.ok(bool(t.reparent(t.find("c"), t.find("b"))), "reparent c below b");
    tap.eq(names(t, t.children(t.find("b"))), std::string("c e d"), "children of b after reparent");
    tap.eq(names(t, t.topological()), std::string("g a b c f e d"), "topological after reparent");
    auto bad = t.reparent(t.find("a"), t.find("f"));
    tap.ok(!bad && bad.error().code == VIR_ERR_INVALID_ARG, "reparent into own subtree refused");
    tap.eq(names(t, t.topological()), std::string("g a b c f e d"), "refused reparent changes nothing");
    tap.ok(bool(t.reparent(t.find("c"), t.find("a"))), "reparent c back below a");
    tap.ok(bool(t.reparent(t.find("g"), kNoMoment)), "reparent to root when already root");
    tap.eq(names(t, t.topological()), std::string("g a c f b e d"), "tree restored");

    // Current.
    tap.eq(t.current(), kNoMoment, "no current at first");
    t.set_current(t.find("b"));
    tap.eq(t.name(t.current()), std::string("b"), "set current");

    // Remove b: e and d move up to a, in their order, ahead of a's children
    // (virDomainMomentMoveChildren).
    auto removed = t.remove(t.find("b"));
    tap.ok(removed.was_current && t.current() == kNoMoment, "removing current clears current");
    tap.eq(t.name(removed.parent), std::string("a"), "children went to the removed moment's parent");
    tap.eq(name_set(t, removed.reparented), std::string("de"), "reparented children reported");
    tap.ok(removed.payload && removed.payload->state == SnapshotStateClass::Active, "payload handed back");
    tap.eq(names(t, t.children(t.find("a"))), std::string("e d c"), "a's children after removing b");
    tap.ok(!t.contains("b") && t.size() == 6, "b gone");

    // Remove a root with children: they become roots.
    t.set_current(t.find("f"));
    auto ra = t.remove(t.find("a"));
    tap.eq(names(t, t.roots()), std::string("e d c g"), "children of a removed root become roots");
    tap.ok(!ra.was_current && t.name(t.current()) == "f", "current kept when another moment is removed");

    // Remove with descendants.
    auto gone = t.remove_with_descendants(t.find("c"));
    tap.eq(gone.size(), size_t(2), "c and f removed together");
    tap.ok(gone.size() == 2 && gone[0].first == "c" && gone[1].first == "f", "removed in pre-order, moment first");
    tap.eq(t.current(), kNoMoment, "current inside a removed subtree is cleared");
    tap.eq(names(t, t.in_creation_order()), std::string("d e g"), "what remains");

    // Freed slots are reused; the new moment is last in creation order.
    auto h = t.add("h", "d", std::make_unique<Snap>());
    tap.ok(h && t.name(*h) == "h", "add after removals");
    tap.eq(names(t, t.topological()), std::string("e d h g"), "new moment placed below its parent");
    tap.eq(names(t, t.in_creation_order()), std::string("d e g h"), "new moment is last in creation order");

    // A single chain has a single leaf (checkpoint "current").
    Tree chain;
    (void)chain.add("c1", "", nullptr);
    (void)chain.add("c2", "c1", nullptr);
    (void)chain.add("c3", "c2", nullptr);
    tap.eq(chain.name(chain.single_chain_leaf()), std::string("c3"), "single chain leaf");
    (void)chain.add("c4", "c2", nullptr);
    tap.eq(chain.single_chain_leaf(), kNoMoment, "a fork has no single chain leaf");
    chain.clear();
    tap.ok(chain.empty() && chain.roots().empty() && chain.find("c1") == kNoMoment, "clear empties the tree");
}

void test_rebuild(test::Tap &tap) {
    // Files can be read in any order: children before parents.
    Tree t;
    (void)t.add_unlinked("c", "b", nullptr);
    (void)t.add_unlinked("b", "a", nullptr);
    (void)t.add_unlinked("a", "", nullptr);
    t.set_current(t.find("c"));
    tap.ok(t.rebuild_relations(), "consistent load rebuilds cleanly");
    tap.eq(names(t, t.topological()), std::string("a b c"), "relations from names");
    tap.eq(t.name(t.current()), std::string("c"), "current kept when consistent");
    tap.ok(t.orphaned().empty(), "nothing orphaned");

    // Missing parent, a two-moment cycle, a self cycle, and a moment below the cycle.
    Tree bad;
    (void)bad.add_unlinked("x", "missing", nullptr);
    (void)bad.add_unlinked("p", "q", nullptr);
    (void)bad.add_unlinked("q", "p", nullptr);
    (void)bad.add_unlinked("r", "p", nullptr);
    (void)bad.add_unlinked("s", "s", nullptr);
    (void)bad.add_unlinked("ok", "", nullptr);
    bad.set_current(bad.find("ok"));
    tap.ok(!bad.rebuild_relations(), "inconsistent relations reported");
    tap.eq(bad.current(), kNoMoment, "current reset on inconsistent relations");
    tap.eq(names(bad, bad.roots()), std::string("ok s q x"), "missing parent and cycle closers became roots");
    tap.eq(bad.name(bad.parent(bad.find("p"))), std::string("q"), "cycle broken at the later moment");
    tap.eq(bad.name(bad.parent(bad.find("r"))), std::string("p"), "moment below a cycle keeps its parent");
    tap.eq(names(bad, bad.orphaned()), std::string("x q s"), "orphaned moments reported");
    tap.eq(bad.topological().size(), size_t(6), "every moment reachable after repair");
}

// ---- list flags ----

const unsigned L = VIR_DOMAIN_SNAPSHOT_LIST_LEAVES, NL = VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES,
               M = VIR_DOMAIN_SNAPSHOT_LIST_METADATA, NM = VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA,
               IN = VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE, AC = VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE,
               DO = VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY, INT = VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL,
               EXT = VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL, ROOTS = VIR_DOMAIN_SNAPSHOT_LIST_ROOTS,
               DESC = VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS, TOPO = VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL;

// What each group value selects on the fixed tree, written out by hand.
// libvirt 9.0 (checked with python-libvirt on the test driver): LEAVES with
// NO_LEAVES selects nothing, NO_METADATA alone selects nothing, and a state or
// location group with every bit set does not filter.
std::string by_hand_leaves(unsigned f) {
    switch (f & (L | NL)) {
    case 0: return "abcdefg";
    case L: return "defg";
    case NL: return "abc";
    default: return "";
    }
}
std::string by_hand_metadata(unsigned f) {
    return (f & (M | NM)) == NM ? "" : "abcdefg";
}
std::string by_hand_state(unsigned f) {
    switch (f & (IN | AC | DO)) {
    case IN: return "ac";
    case AC: return "bef";
    case DO: return "dg";
    case IN | AC: return "abcef";
    case IN | DO: return "acdg";
    case AC | DO: return "bdefg";
    default: return "abcdefg";
    }
}
std::string by_hand_location(unsigned f) {
    switch (f & (INT | EXT)) {
    case INT: return "abcf";
    case EXT: return "deg";
    default: return "abcdefg";
    }
}

std::string keep(const std::string &set, const std::string &allowed) {
    std::string out;
    for (char c : set)
        if (allowed.find(c) != std::string::npos) out += c;
    return out;
}

void test_list_explicit(test::Tap &tap) {
    Tree t;
    build_fixed(t);
    auto pred = snapshot_predicate(t);
    const auto &bits = snapshot_list_flags();
    MomentId a = t.find("a"), b = t.find("b"), c = t.find("c");
    struct Case {
        MomentId from;
        unsigned flags;
        const char *expected;  // in listing order
    } cases[] = {
        {kNoMoment, 0, "a b c d e f g"},
        {kNoMoment, TOPO, "g a c f b e d"},
        {kNoMoment, ROOTS, "g a"},
        {kNoMoment, ROOTS | TOPO, "g a"},
        {kNoMoment, L, "d e f g"},
        {kNoMoment, NL, "a b c"},
        {kNoMoment, L | NL, ""},
        {kNoMoment, ROOTS | L, "g"},
        {kNoMoment, ROOTS | NL, "a"},
        {kNoMoment, M, "a b c d e f g"},
        {kNoMoment, NM, ""},
        {kNoMoment, M | NM, "a b c d e f g"},
        {kNoMoment, IN, "a c"},
        {kNoMoment, AC, "b e f"},
        {kNoMoment, DO, "d g"},
        {kNoMoment, IN | DO, "a c d g"},
        {kNoMoment, IN | AC | DO, "a b c d e f g"},
        {kNoMoment, INT, "a b c f"},
        {kNoMoment, EXT, "d e g"},
        {kNoMoment, INT | EXT, "a b c d e f g"},
        {kNoMoment, AC | EXT, "e"},
        {kNoMoment, AC | INT, "b f"},
        {kNoMoment, DO | L | TOPO, "g d"},
        {kNoMoment, ROOTS | EXT, "g"},
        {kNoMoment, NL | INT | M, "a b c"},
        {kNoMoment, NL | EXT, ""},
        {kNoMoment, L | IN, ""},
        {kNoMoment, L | AC | DO | EXT, "d e g"},
        {a, 0, "c b"},
        {a, DESC, "c f b e d"},
        {a, DESC | TOPO, "c f b e d"},
        {a, DESC | L, "f e d"},
        {a, DESC | NL, "c b"},
        {a, DESC | EXT, "e d"},
        {a, DESC | IN, "c"},
        {a, L, ""},
        {a, NM, ""},
        {b, 0, "e d"},
        {b, DESC | DO, "d"},
        {c, 0, "f"},
        {c, DESC | NL, ""},
        {t.find("g"), DESC, ""},
    };
    for (const Case &cs : cases) {
        std::string label = "list from " + (cs.from == kNoMoment ? std::string("domain") : t.name(cs.from)) +
                            " flags " + std::to_string(cs.flags);
        tap.eq(names(t, t.list(cs.from, cs.flags, bits, pred)), std::string(cs.expected), label);
        size_t n = std::string(cs.expected).empty() ? 0 : (std::string(cs.expected).size() + 1) / 2;
        tap.eq(t.count(cs.from, cs.flags, bits, pred), n, label + " count");
    }
}

// Every combination of the four flag groups (4 x 4 x 8 x 4 = 512), one TAP line
// each, checked against the by-hand group tables for the domain listing, the
// roots, b's children, b's descendants and a's descendants.
void test_list_all_combinations(test::Tap &tap) {
    Tree t;
    build_fixed(t);
    auto pred = snapshot_predicate(t);
    const auto &bits = snapshot_list_flags();
    const unsigned leaves[] = {0, L, NL, L | NL}, meta[] = {0, M, NM, M | NM};
    const unsigned state[] = {0, IN, AC, DO, IN | AC, IN | DO, AC | DO, IN | AC | DO};
    const unsigned loc[] = {0, INT, EXT, INT | EXT};
    MomentId a = t.find("a"), b = t.find("b");
    for (unsigned lv : leaves)
        for (unsigned me : meta)
            for (unsigned st : state)
                for (unsigned lo : loc) {
                    unsigned f = lv | me | st | lo;
                    std::string sel = keep(keep(keep(by_hand_leaves(f), by_hand_metadata(f)), by_hand_state(f)),
                                           by_hand_location(f));
                    bool good = name_set(t, t.list(kNoMoment, f, bits, pred)) == sel &&
                                t.count(kNoMoment, f, bits, pred) == sel.size() &&
                                name_set(t, t.list(kNoMoment, f | ROOTS, bits, pred)) == keep(sel, "ag") &&
                                t.count(kNoMoment, f | ROOTS, bits, pred) == keep(sel, "ag").size() &&
                                name_set(t, t.list(kNoMoment, f | TOPO, bits, pred)) == sel &&
                                name_set(t, t.list(b, f, bits, pred)) == keep(sel, "de") &&
                                name_set(t, t.list(b, f | DESC, bits, pred)) == keep(sel, "de") &&
                                name_set(t, t.list(a, f | DESC, bits, pred)) == keep(sel, "bcdef") &&
                                t.count(a, f | DESC, bits, pred) == keep(sel, "bcdef").size();
                    tap.ok(good, "flag combination " + std::to_string(f) + " selects {" + sel + "}");
                }
}

void test_checkpoint_flags(test::Tap &tap) {
    MomentTree<int> t;
    (void)t.add("c1", "", 0);
    (void)t.add("c2", "c1", 0);
    (void)t.add("c3", "c2", 0);
    (void)t.add("x1", "c1", 0);
    const auto &bits = checkpoint_list_flags();
    tap.eq(names(t, t.list(kNoMoment, VIR_DOMAIN_CHECKPOINT_LIST_ROOTS, bits)), std::string("c1"),
           "checkpoint ROOTS");
    tap.eq(names(t, t.list(kNoMoment, VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL, bits)), std::string("c1 x1 c2 c3"),
           "checkpoint TOPOLOGICAL (value 2, not METADATA)");
    tap.eq(names(t, t.list(kNoMoment, VIR_DOMAIN_CHECKPOINT_LIST_LEAVES, bits)), std::string("c3 x1"),
           "checkpoint LEAVES");
    tap.eq(names(t, t.list(t.find("c1"), VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS, bits)), std::string("x1 c2 c3"),
           "checkpoint DESCENDANTS");
    tap.eq(t.count(t.find("c1"), 0, bits), size_t(2), "checkpoint children count");
}

// ---- 100,000 moments ----

size_t heap_in_use() {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

// Resident set size in bytes (sanitizer builds replace malloc, and mallinfo2 reads 0).
size_t rss_bytes() {
    long pages = 0, resident = 0;
    if (FILE *f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        std::fclose(f);
    }
    return size_t(resident) * size_t(sysconf(_SC_PAGESIZE));
}

// Checks every relation of `t` against the parent array it was built from.
void check_big(test::Tap &tap, const MomentTree<int> &t, const std::vector<int64_t> &parent, const std::string &what) {
    const size_t n = parent.size();
    tap.eq(t.size(), n, what + ": size");
    std::vector<MomentId> id(n);
    bool found = true;
    for (size_t i = 0; i < n; i++) {
        id[i] = t.find("m" + std::to_string(i));
        found = found && id[i] != kNoMoment && t.payload(id[i]) == int(i);
    }
    tap.ok(found, what + ": every name found with its payload");
    std::vector<size_t> nchildren(n, 0);
    size_t nroots = 0;
    for (size_t i = 0; i < n; i++) {
        if (parent[i] < 0) nroots++;
        else nchildren[size_t(parent[i])]++;
    }
    bool parents_ok = true, counts_ok = true;
    for (size_t i = 0; i < n; i++) {
        MomentId want = parent[i] < 0 ? kNoMoment : id[size_t(parent[i])];
        parents_ok = parents_ok && t.parent(id[i]) == want;
        counts_ok = counts_ok && t.child_count(id[i]) == nchildren[i];
    }
    tap.ok(parents_ok, what + ": every parent");
    tap.ok(counts_ok, what + ": every child count");
    tap.eq(t.root_count(), nroots, what + ": root count");
    size_t nleaves = size_t(std::count(nchildren.begin(), nchildren.end(), size_t(0)));
    tap.eq(t.leaves().size(), nleaves, what + ": leaves");
    const auto &bits = snapshot_list_flags();
    tap.eq(t.count(kNoMoment, VIR_DOMAIN_SNAPSHOT_LIST_LEAVES, bits), nleaves, what + ": LEAVES count");
    tap.eq(t.count(kNoMoment, VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES, bits), n - nleaves, what + ": NO_LEAVES count");
    tap.eq(t.count(kNoMoment, VIR_DOMAIN_SNAPSHOT_LIST_ROOTS, bits), nroots, what + ": ROOTS count");
    tap.eq(t.count(kNoMoment, 0, bits), n, what + ": count all");

    auto topo = t.topological();
    std::vector<int64_t> pos(t.size() ? *std::max_element(id.begin(), id.end()) + 1 : 0, -1);
    for (size_t i = 0; i < topo.size(); i++) pos[topo[i]] = int64_t(i);
    bool topo_ok = topo.size() == n;
    for (size_t i = 0; i < n && topo_ok; i++)
        topo_ok = pos[id[i]] >= 0 && (parent[i] < 0 || pos[id[size_t(parent[i])]] < pos[id[i]]);
    tap.ok(topo_ok, what + ": topological order has every moment after its parent");
    auto listed = t.list(kNoMoment, VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL, bits);
    tap.ok(listed == topo, what + ": TOPOLOGICAL listing equals the topological walk");
    auto creation = t.list(kNoMoment, 0, bits);
    bool creation_ok = creation.size() == n;
    for (size_t i = 0; i < n && creation_ok; i++) creation_ok = creation[i] == id[i];
    tap.ok(creation_ok, what + ": plain listing is creation order");
    if (nroots == 1) {
        auto desc = t.descendants(id[0]);
        std::set<MomentId> uniq(desc.begin(), desc.end());
        tap.ok(desc.size() == n - 1 && uniq.size() == n - 1 && !uniq.count(id[0]),
               what + ": descendants of the root are all other moments");
        tap.eq(t.count(id[0], VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS, bits), n - 1,
               what + ": DESCENDANTS count of the root");
    }
}

template <typename Fn>
double seconds(Fn &&fn) {
    auto start = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void test_big(test::Tap &tap) {
    const size_t n = 100000;
    std::mt19937_64 rng(20240517);
    struct Shape {
        std::string what;
        std::vector<int64_t> parent;
    };
    std::vector<Shape> shapes(3);
    shapes[0].what = "deep chain";
    shapes[1].what = "wide fan";
    shapes[2].what = "random tree";
    for (auto &s : shapes) s.parent.resize(n);
    for (size_t i = 0; i < n; i++) {
        shapes[0].parent[i] = int64_t(i) - 1;
        shapes[1].parent[i] = i == 0 ? -1 : 0;
        shapes[2].parent[i] = i == 0 ? -1 : int64_t(rng() % i);
    }
    for (const Shape &s : shapes) {
        size_t before = heap_in_use(), rss_before = rss_bytes();
        auto tree = std::make_unique<MomentTree<int>>();
        double build = seconds([&] {
            for (size_t i = 0; i < n; i++) {
                std::string parent = s.parent[i] < 0 ? std::string() : "m" + std::to_string(s.parent[i]);
                if (!tree->add("m" + std::to_string(i), parent, int(i))) std::abort();
            }
        });
        size_t after = heap_in_use(), rss_after = rss_bytes();
        char note[240];
        std::snprintf(note, sizeof note,
                      "%s: %zu moments built in %.3f s; per moment: %.1f heap bytes (mallinfo2), %.1f RSS bytes",
                      s.what.c_str(), n, build, double(after - before) / double(n),
                      double(rss_after > rss_before ? rss_after - rss_before : 0) / double(n));
        tap.note(note);
        check_big(tap, *tree, s.parent, s.what);

        // The same shape loaded in reverse (children first) and rebuilt.
        MomentTree<int> loaded;
        for (size_t i = n; i-- > 0;) {
            std::string parent = s.parent[i] < 0 ? std::string() : "m" + std::to_string(s.parent[i]);
            if (!loaded.add_unlinked("m" + std::to_string(i), parent, int(i))) std::abort();
        }
        bool consistent = false;
        double rebuild = seconds([&] { consistent = loaded.rebuild_relations(); });
        std::snprintf(note, sizeof note, "%s: rebuild_relations after a reverse-order load took %.3f s",
                      s.what.c_str(), rebuild);
        tap.note(note);
        tap.ok(consistent, s.what + ": reverse-order load is consistent");
        tap.eq(loaded.root_count(), tree->root_count(), s.what + ": reloaded root count");
        tap.eq(loaded.leaves().size(), tree->leaves().size(), s.what + ": reloaded leaves");
        bool same_parents = true;
        for (size_t i = 0; i < n && same_parents; i++) {
            MomentId p = loaded.parent(loaded.find("m" + std::to_string(i)));
            same_parents = (s.parent[i] < 0) ? p == kNoMoment : loaded.name(p) == "m" + std::to_string(s.parent[i]);
        }
        tap.ok(same_parents, s.what + ": reloaded parents match");

        // Removing a middle moment re-parents its children to its parent.
        MomentId mid = tree->find("m50000");
        MomentId mid_parent = tree->parent(mid);
        size_t mid_children = tree->child_count(mid);
        size_t parent_children = tree->child_count(mid_parent);
        auto removed = tree->remove(mid);
        tap.ok(removed.payload == 50000 && removed.reparented.size() == mid_children &&
                   tree->child_count(mid_parent) == parent_children - 1 + mid_children,
               s.what + ": remove re-parents children");
        tap.eq(tree->size(), n - 1, s.what + ": one moment fewer");
        tap.eq(tree->topological().size(), n - 1, s.what + ": all remaining moments reachable");

        // Removing the root with all descendants empties the tree.
        MomentId root = tree->find("m0");
        double drop = seconds([&] { (void)tree->remove_with_descendants(root); });
        tap.ok(tree->empty() && tree->roots().empty(), s.what + ": remove_with_descendants of the root empties it");
        std::snprintf(note, sizeof note, "%s: remove_with_descendants took %.3f s", s.what.c_str(), drop);
        tap.note(note);
        tree.reset();  // no recursion in destruction either
    }
    // A 100,000-deep chain with a cycle closing at the very end.
    MomentTree<int> cyc;
    for (size_t i = 0; i < n; i++)
        (void)cyc.add_unlinked("m" + std::to_string(i), "m" + std::to_string((i + n - 1) % n), int(i));
    tap.ok(!cyc.rebuild_relations(), "100k-long cycle detected");
    tap.ok(cyc.root_count() == 1 && cyc.name(cyc.roots()[0]) == "m" + std::to_string(n - 1) &&
               cyc.descendant_count(cyc.roots()[0]) == n - 1,
           "100k-long cycle broken at the last moment, the rest hangs below it");
}

}  // namespace

int main() {
    test::Tap tap;
    test_relations(tap);
    test_rebuild(tap);
    test_list_explicit(tap);
    test_list_all_combinations(tap);
    test_checkpoint_flags(tap);
    test_big(tap);
    return tap.finish();
}
