// qemuimgtest.cc - qemu/qemu_img against the real qemu-img: overlays, backing
// chains parsed from info JSON, internal snapshots, check, commit, rebase,
// filling a StorageSource chain, and libvirt-style errors.

#include "tap.hh"

#include "qemu/qemu_img.hh"
#include "util/file.hh"
#include "util/process.hh"

#include <string>

using namespace virtsnap;
using namespace virtsnap::qemu;

namespace {

// Writes `byte` at `offset` through qemu-io so data really lands in a layer.
bool write_pattern(const std::string &img, const std::string &fmt, int byte, const std::string &offset) {
    auto r = process::run(std::vector<std::string>{"qemu-io", "-f", fmt, "-c",
                                                   "write -P " + std::to_string(byte) + " " + offset + " 64k", img});
    return r.has_value();
}

bool read_pattern(const std::string &img, const std::string &fmt, int byte, const std::string &offset) {
    auto r = process::run(std::vector<std::string>{"qemu-io", "-f", fmt, "-c",
                                                   "read -P " + std::to_string(byte) + " " + offset + " 64k", img});
    return r.has_value() && r->find("Pattern verification failed") == std::string::npos;
}

void test_parse(test::Tap &t) {
    auto one = qemu_img::parse_info_json(R"({"virtual-size": 1048576, "filename": "a.qcow2", "cluster-size": 65536,
        "format": "qcow2", "actual-size": 200704, "dirty-flag": false,
        "backing-filename": "b.raw", "full-backing-filename": "/x/b.raw", "backing-filename-format": "raw",
        "snapshots": [{"icount": 0, "vm-clock-nsec": 5, "name": "s1", "date-sec": 1700000000,
                       "date-nsec": 7, "vm-clock-sec": 3, "id": "1", "vm-state-size": 4096}]})");
    if (!t.ok(one.has_value(), "parse single info", one ? "" : one.error().message())) return;
    auto &i = one->front();
    t.ok(i.format == "qcow2" && i.virtual_size == 1048576 && i.cluster_size == 65536u && i.actual_size == 200704u,
         "sizes and format");
    t.ok(i.backing_filename == "b.raw" && i.full_backing_filename == "/x/b.raw" && i.backing_format == "raw",
         "backing fields");
    t.ok(i.snapshots.size() == 1 && i.snapshots[0].name == "s1" && i.snapshots[0].id == "1" &&
             i.snapshots[0].vm_state_size == 4096 && i.snapshots[0].date_sec == 1700000000 &&
             i.snapshots[0].vm_clock_sec == 3 && i.snapshots[0].vm_clock_nsec == 5,
         "snapshot fields");
    auto bad = qemu_img::parse_info_json(R"({"filename": "x"})");
    t.ok(!bad && bad.error().detail.find("cannot parse qemu-img info output") == 0, "missing fields rejected");
    auto notjson = qemu_img::parse_info_json("qemu-img: oops");
    t.ok(!notjson.has_value(), "non-JSON rejected");
}

void test_real(test::Tap &t) {
    if (!process::run(std::vector<std::string>{"qemu-img", "--version"})) {
        t.skip("qemu-img", "qemu-img is not installed");
        return;
    }
    std::string dir = test::temp_dir("qemuimgtest");
    std::string base = dir + "/base.raw", mid = dir + "/mid.qcow2", top = dir + "/top.qcow2";
    t.ok(qemu_img::create(base, "raw", 4 << 20).has_value(), "create raw base");
    t.ok(qemu_img::create_overlay(mid, base, "raw").has_value(), "create overlay on raw");
    t.ok(qemu_img::create_overlay(top, mid, "qcow2", 8 << 20).has_value(), "create overlay with a larger size");

    auto chain = qemu_img::info_chain(top);
    if (t.ok(chain.has_value(), "info --backing-chain", chain ? "" : chain.error().message())) {
        t.eq(chain->size(), size_t(3), "three images in the chain");
        if (chain->size() == 3) {
            t.ok((*chain)[0].format == "qcow2" && (*chain)[0].virtual_size == 8u << 20, "top is 8 MiB qcow2");
            t.ok((*chain)[0].backing_filename == mid && (*chain)[0].backing_format == "qcow2", "top's backing");
            t.ok((*chain)[1].backing_filename == base && (*chain)[1].backing_format == "raw", "mid's backing");
            t.ok((*chain)[2].format == "raw" && (*chain)[2].backing_filename.empty(), "base ends the chain");
        }
    }

    conf::StorageSource src;
    src.path = top;
    auto filled = qemu_img::fill_backing_chain(src);
    t.ok(filled.has_value(), "fill_backing_chain", filled ? "" : filled.error().message());
    t.ok(src.format == "qcow2" && src.backing && src.backing->path == mid && src.backing->format == "qcow2" &&
             src.backing->backing && src.backing->backing->path == base &&
             src.backing->backing->format == "raw" && src.backing->backing->backing_terminated,
         "chain filled with formats and terminated");

    // Internal snapshots: create, list, revert, delete.
    t.ok(write_pattern(top, "qcow2", 0x11, "0"), "write pattern 0x11");
    t.ok(qemu_img::snapshot_create(top, "s1").has_value(), "snapshot -c");
    t.ok(write_pattern(top, "qcow2", 0x22, "0"), "write pattern 0x22");
    auto list = qemu_img::snapshot_list(top);
    t.ok(list && list->size() == 1 && list->front().name == "s1", "snapshot listed");
    t.ok(qemu_img::snapshot_apply(top, "s1").has_value(), "snapshot -a");
    t.ok(read_pattern(top, "qcow2", 0x11, "0"), "revert restored the data");
    // qcow2 allows two snapshots with one name (distinct ids): callers must
    // check names themselves, as libvirt does.
    t.ok(qemu_img::snapshot_create(top, "s1").has_value(), "duplicate name accepted by qemu-img");
    auto two = qemu_img::snapshot_list(top);
    t.ok(two && two->size() == 2 && (*two)[0].id != (*two)[1].id, "both listed with distinct ids");
    t.ok(qemu_img::snapshot_delete(top, "s1").has_value(), "snapshot -d");
    t.ok(qemu_img::snapshot_delete(top, "s1").has_value(), "snapshot -d of the second");
    auto after = qemu_img::snapshot_list(top);
    t.ok(after && after->empty(), "snapshot gone");
    auto missing = qemu_img::snapshot_delete(top, "nope");
    t.ok(!missing && missing.error().code == VIR_ERR_INTERNAL_ERROR &&
             missing.error().detail.find("Child process (qemu-img snapshot -q -d nope ") == 0 &&
             missing.error().detail.find("unexpected exit status 1: qemu-img: Could not delete snapshot 'nope'") !=
                 std::string::npos,
         "error quotes the command and qemu-img's stderr", missing ? "" : missing.error().detail);

    // check and commit.
    auto c = qemu_img::check(top);
    t.ok(c && c->clean && c->format == "qcow2", "check of a clean image", c ? "" : c.error().message());
    t.ok(write_pattern(top, "qcow2", 0x33, "1M"), "write into top");
    t.ok(qemu_img::commit(top).has_value(), "commit top into mid");
    t.ok(read_pattern(mid, "qcow2", 0x33, "1M"), "data committed into mid");

    // rebase: drop mid from the chain (safe rebase copies the difference).
    t.ok(qemu_img::rebase(top, base, "raw", false).has_value(), "rebase onto base");
    auto ri = qemu_img::info(top);
    t.ok(ri && ri->backing_filename == base && ri->backing_format == "raw", "rebased backing recorded");
    t.ok(read_pattern(top, "qcow2", 0x33, "1M"), "rebase kept the guest-visible data");

    auto nofile = qemu_img::info(dir + "/does-not-exist.qcow2");
    t.ok(!nofile && nofile.error().detail.find("Could not open") != std::string::npos, "info of a missing file",
         nofile ? "" : nofile.error().detail);
    auto c2 = qemu_img::check(dir + "/does-not-exist.qcow2");
    t.ok(!c2.has_value(), "check of a missing file fails");
}

}  // namespace

int main() {
    test::Tap t;
    test_parse(t);
    test_real(t);
    return t.finish();
}
