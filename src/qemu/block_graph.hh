// block_graph.hh - a disk's QEMU block graph: the -blockdev nodes of every
// layer of its backing chain and the frontend -device that uses the top.
//
// Every layer is a protocol node (file, host_device, nbd) named
// libvirt-<N>-storage under a format node (raw, qcow2) named libvirt-<N>-format
// whose backing is given explicitly: the next layer's format node, or null at
// the end of the chain. QEMU therefore never opens a backing file on its own
// (no probing, no surprises from image metadata), and snapshots can swap layers
// by node name. N comes from a per-domain NodeIndexAllocator that the runtime
// status persists, so names stay stable across daemon restarts. The same
// builder describes the one new layer of a snapshot overlay for blockdev-add.
#pragma once

#include "conf/domain_def.hh"
#include "qemu/qvalue.hh"
#include "util/result.hh"

#include <optional>
#include <string>
#include <vector>

namespace virtsnap::qemu {

// Hands out the N of libvirt-<N>-storage/format, one per layer, never reused
// within a domain's run. next() is what to persist; restore with the saved value.
class NodeIndexAllocator {
public:
    explicit NodeIndexAllocator(unsigned next = 1) : next_(next) {}
    unsigned allocate() { return next_++; }
    unsigned next() const { return next_; }
    // After adopting an index that was already in use (status XML), move past it.
    void note_used(unsigned index) { if (index >= next_) next_ = index + 1; }

private:
    unsigned next_;
};

std::string storage_node_name(unsigned index);  // libvirt-<N>-storage
std::string format_node_name(unsigned index);    // libvirt-<N>-format

// One layer of a chain: the two nodes, as QDicts ready for -blockdev (through
// qvalue_to_json) or for QMP blockdev-add.
struct LayerNodes {
    unsigned index = 0;
    QValue storage;   // protocol node
    QValue format;    // format node
    std::string storage_name() const { return storage_node_name(index); }
    std::string format_name() const { return format_node_name(index); }
};

struct LayerOptions {
    bool read_only = false;
    // Node name of the backing format node; nullopt = "backing": null (end of chain).
    std::optional<std::string> backing;
    // From <driver cache=... discard=... io=...>, applied to both nodes.
    std::string cache, discard, io;
};

// The nodes of one layer. Errors: CONFIG_UNSUPPORTED for storage types,
// protocols or formats QEMU is not driven with here.
[[nodiscard]] Result<LayerNodes> layer_nodes(const conf::StorageSource &src, unsigned index,
                                             const LayerOptions &opts);

// A whole disk: layers[0] is the top (what the guest sees), layers.back() the
// base. The chain must be explicit: a layer whose image has a backing file must
// have src.backing filled in (qemu_img::fill_backing_chain does that); a missing
// backing is taken as the end of the chain. Empty CD-ROMs have no layers.
struct DiskBlockGraph {
    std::vector<LayerNodes> layers;
    std::string top_node() const { return layers.empty() ? "" : layers.front().format_name(); }
    // Nodes in the order they must be created: base first, storage before format.
    std::vector<const QValue *> creation_order() const;
};

// Uses src.index / backing indexes when the status XML has them (adopting them
// in `alloc`), otherwise allocates base first so newer layers get larger N.
[[nodiscard]] Result<DiskBlockGraph> disk_block_graph(const conf::DomainDisk &disk, NodeIndexAllocator &alloc);

// The frontend of a disk, as the -device argument (also device_add's options):
// virtio-blk-pci, scsi-hd/scsi-cd, ide-hd/ide-cd (IDE and SATA), with
// drive=<top format node>, id=<libvirt alias>, bootindex and serial.
// `q35` selects the machine's built-in AHCI for SATA and rejects IDE.
[[nodiscard]] Result<std::string> disk_frontend_device(const conf::DomainDisk &disk, const DiskBlockGraph &graph,
                                                       bool q35);

// libvirt's virDiskNameToIndex: "vda" -> 0, "sdb" -> 1, "hdaa" -> 26; -1 if invalid.
int disk_name_to_index(std::string_view name);
// The alias libvirt gives a disk: virtio-disk0, scsi0-0-0-1, sata0-0-2, ide0-1-0.
std::string disk_alias(const conf::DomainDisk &disk);

}  // namespace virtsnap::qemu
