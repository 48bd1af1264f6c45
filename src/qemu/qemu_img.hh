// qemu_img.hh - the qemu-img operations the backend needs on inactive images:
// create (plain and overlays), internal snapshots, info with backing chains,
// check and commit. Failures are libvirt-style errors quoting qemu-img's stderr.
// The output of `info --output=json` is parsed into structs through QValue.
#pragma once

#include "conf/domain_def.hh"
#include "util/result.hh"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace virtsnap::qemu::qemu_img {

struct SnapshotInfo {
    std::string id, name;
    uint64_t vm_state_size = 0;
    int64_t date_sec = 0, date_nsec = 0;
    int64_t vm_clock_sec = 0, vm_clock_nsec = 0;
};

struct ImageInfo {
    std::string filename, format;
    uint64_t virtual_size = 0;
    std::optional<uint64_t> actual_size, cluster_size;
    std::string backing_filename;        // as recorded in the image
    std::string full_backing_filename;   // resolved by qemu-img
    std::string backing_format;          // "" when the image does not record it
    bool dirty = false;
    std::vector<SnapshotInfo> snapshots;
};

struct CheckResult {
    bool clean = true;
    uint64_t corruptions = 0, leaks = 0, check_errors = 0;
    std::string format;
};

// Which qemu-img to run (tests may point elsewhere); default "qemu-img".
void set_binary(std::string path);

// `qemu-img info --output=json` (one image) and with --backing-chain (top first).
// force_share (-U) reads images a running QEMU holds locked.
[[nodiscard]] Result<ImageInfo> info(const std::string &path, const std::string &format = "", bool force_share = false);
[[nodiscard]] Result<std::vector<ImageInfo>> info_chain(const std::string &path, const std::string &format = "",
                                                        bool force_share = false);
// Parses info's JSON: a single object or (backing chain) a list of them.
[[nodiscard]] Result<std::vector<ImageInfo>> parse_info_json(std::string_view json);

[[nodiscard]] Status create(const std::string &path, const std::string &format, uint64_t size_bytes);
// A qcow2 overlay on `backing` (recorded with its format); size 0 = backing's size.
[[nodiscard]] Status create_overlay(const std::string &path, const std::string &backing,
                                    const std::string &backing_format, uint64_t size_bytes = 0);

[[nodiscard]] Status snapshot_create(const std::string &path, const std::string &name);
[[nodiscard]] Status snapshot_delete(const std::string &path, const std::string &name);
[[nodiscard]] Status snapshot_apply(const std::string &path, const std::string &name);
[[nodiscard]] Result<std::vector<SnapshotInfo>> snapshot_list(const std::string &path);

// Consistency check; corruptions and leaks are reported in the result, not as errors.
[[nodiscard]] Result<CheckResult> check(const std::string &path, const std::string &format = "");
// Commits an overlay into its backing file (the overlay is kept, emptied).
[[nodiscard]] Status commit(const std::string &path, const std::string &format = "");
// Rebases an overlay onto a new backing file; unsafe_ only rewrites the header.
[[nodiscard]] Status rebase(const std::string &path, const std::string &backing, const std::string &backing_format,
                            bool unsafe_);

// Fills src.backing from the image's own metadata when the chain is not given
// explicitly (backing == null and not terminated), so the command line can
// describe it node by node. Local file/block sources only. Errors are
// libvirt's: a missing image is SYSTEM_ERROR "Cannot access backing file
// '<base>' of storage file '<top>' (as uid:U, gid:G): <strerror>"; a backing
// file whose format the image does not record is OPERATION_INVALID unless it
// probes as raw (libvirt's rule: probing can only ever be trusted for raw).
[[nodiscard]] Status fill_backing_chain(conf::StorageSource &src);

// What libvirt does for every disk before starting a domain: each qcow2 chain
// the XML leaves open (a layer without <backingStore>) is completed from the
// images, so QEMU is told every layer and never gets "backing": null for an
// overlay that has a base.
[[nodiscard]] Status complete_backing_chains(conf::DomainDef &def);

}  // namespace virtsnap::qemu::qemu_img
