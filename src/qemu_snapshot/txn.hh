// txn.hh - the undo stack of a state machine: each side effect registers its
// undo before it happens; on failure the undos run in reverse order and the
// first error (the one that made the machine fail) is what the caller sees.
//
//   add_undo(u1) ─► effect 1 ─► add_undo(u2) ─► effect 2 ─► ... ─► commit()
//        │                          │                             (undos dropped)
//        └──── failure anywhere ────┴──► abort(err): u_n ... u_1, returns err
//
// An undo registered for an effect that then failed still runs: undos are
// written to be harmless when their effect did not happen (unlink of a file
// that is not there, blockdev-del of a node QEMU never added). Undo failures
// are logged and otherwise ignored, as QEMU's tran_abort() and libvirt's
// cleanup paths do; they never replace the first error.
#pragma once

#include "util/result.hh"

#include <functional>
#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

class Txn {
public:
    using Undo = std::function<Status()>;

    Txn() = default;
    Txn(const Txn &) = delete;
    Txn &operator=(const Txn &) = delete;
    // A transaction that was neither committed nor aborted aborts on destruction.
    ~Txn();

    // Registers `undo` (named for logs) to run if the transaction aborts.
    void add_undo(std::string what, Undo undo);
    // The point of no return: the undos are dropped.
    void commit();
    // Runs the undos in reverse order and returns `first` unchanged.
    [[nodiscard]] Error abort(Error first);

    size_t pending() const { return undos_.size(); }
    // Names of the registered undos in registration order (tests).
    std::vector<std::string> names() const;

private:
    void run_undos();

    std::vector<std::pair<std::string, Undo>> undos_;
};

}  // namespace virtsnap::qemu_snapshot
