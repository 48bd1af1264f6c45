// qcow2_overlay.hh - writes an empty qcow2 overlay without running qemu-img.
//
// Every external snapshot of a running disk creates one overlay, and running
// qemu-img for it costs ~6 ms (exec, QEMU's module set-up, opening the
// backing image): the largest part of a disk-only snapshot's call. An empty
// overlay is a fixed, small structure, so the common case is written here,
// byte for byte what `qemu-img create -f qcow2 -b B -F F` writes (qcow2 v3,
// 64 KiB clusters, 16-bit refcounts, zlib, no lazy refcounts):
//
//   cluster 0   header (112 bytes), backing-format and feature-name-table
//               extensions, end marker, the backing file name
//   cluster 1   refcount table: one entry, cluster 2
//   cluster 2   refcount block: clusters 0-3 used once
//   cluster 3   L1 table, all zero (the file ends with it)
//
// Anything outside that case answers std::nullopt from plan_overlay and the
// caller runs qemu-img instead, which also words the errors (a missing or
// unreadable backing image, an unknown format).
#pragma once

#include "util/result.hh"

#include <cstdint>
#include <optional>
#include <string>

namespace virtsnap::qemu::qcow2 {

struct OverlayPlan {
    std::string backing;         // recorded as given
    std::string backing_format;  // "qcow2" or "raw"
    uint64_t virtual_size = 0;
};

// The plan for an overlay of `backing` (size_bytes 0: the backing's virtual
// size), when this writer can make it:
//   - the backing is a local regular file named by an absolute path;
//   - in qcow2 (its header names the size; not encrypted, no incompatible
//     feature but the dirty bit) or raw (its length);
//   - the size is a non-zero multiple of 512 whose L1 table fits one
//     cluster (up to 4 TiB), and the name fits the header cluster.
std::optional<OverlayPlan> plan_overlay(const std::string &backing, const std::string &backing_format,
                                        uint64_t size_bytes);

// The image bytes for a plan.
std::string overlay_bytes(const OverlayPlan &plan);

// Writes the image to `path` (created or truncated, mode 0644 less umask, as
// qemu-img) and fdatasyncs it, as qemu-img does when it closes the image.
[[nodiscard]] Status write_overlay(const std::string &path, const OverlayPlan &plan);

}  // namespace virtsnap::qemu::qcow2
