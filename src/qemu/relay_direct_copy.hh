// relay_direct_copy.hh - virtsnap-relay's copy of a memory stream into its
// image with O_DIRECT, for paused guests (memory_relay.hh, "direct").
//
// Why: on the hosts measured here (docs/performance.md, "Memory written with
// O_DIRECT") QEMU writing a multi-GiB stream into the page cache spends most
// of its time allocating and filling page cache pages, at half the disk's
// O_DIRECT rate, and the flush follows. Reading the stream from a pipe into a
// few reused aligned buffers and writing those with O_DIRECT puts the copy on
// a second core and leaves nothing to flush.
//
// Layout: the image's first block after `offset` is completed through the
// buffered descriptor, every following whole block goes through the O_DIRECT
// one, and the tail after the last whole block through the buffered one
// again, so that no block is written both ways.
//
//   reader (this thread)                  writer thread
//   read the pipe into a free buffer ──►  pwrite it (O_DIRECT where aligned)
//   EOF ─────────────────────────────────► drains the queue, ends
//
// A write error or `abandoned` truncates the image to `offset` and the rest
// of the stream is read and dropped, so QEMU's migration still completes.
#pragma once

#include <csignal>
#include <cstdint>

namespace virtsnap::relay {

// Returns 0 when every byte reached the image (or was dropped because
// `abandoned` was set), else the errno of the first failure.
int direct_copy(int stream, int image, int image_direct, uint64_t offset, const volatile sig_atomic_t &abandoned);

}  // namespace virtsnap::relay
