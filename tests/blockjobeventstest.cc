// blockjobeventstest.cc - daemon::BlockJobEventMapper: the QMP events of a
// block job turned into libvirt's block-job statuses, including the failure
// and cancel paths a healthy QEMU in the e2e tests never takes
// (test_events.py covers READY and COMPLETED end to end).

#include "tap.hh"

#include "daemon/block_job_events.hh"

#include <libvirt/libvirt.h>

using namespace virtsnap;
using daemon::BlockJobEventMapper;
using daemon::BlockJobEventSource;
using qemu::QDict;
using qemu::QmpEvent;

namespace {

QmpEvent status(const std::string &id, const std::string &st) {
    return QmpEvent{"JOB_STATUS_CHANGE", QDict{{"id", id}, {"status", st}}, 0, 0};
}
QmpEvent block(const std::string &name, const std::string &id, const char *error = nullptr) {
    QDict d{{"type", "commit"}, {"device", id}, {"len", 100}, {"offset", 100}, {"speed", 0}};
    if (error) d.push_back({"error", error});
    return QmpEvent{name, d, 0, 0};
}

BlockJobEventSource active_job() {
    BlockJobEventSource j;
    j.job_id = "commit-vda";
    j.target = "vda";
    j.type = VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT;
    j.path = "/img/top.qcow2";
    j.path_after = "/img/base.qcow2";
    return j;
}

std::string run(BlockJobEventMapper &m, const std::vector<QmpEvent> &events) {
    std::string out;
    for (const auto &e : events)
        if (auto em = m.on_event(e)) out += std::to_string(em->status) + "@" + em->path + " ";
    return out;
}

}  // namespace

int main() {
    test::Tap t;
    {
        BlockJobEventMapper m(active_job());
        t.eq(run(m, {status("commit-vda", "created"), status("commit-vda", "running"), block("BLOCK_JOB_READY", "commit-vda"),
                     status("commit-vda", "ready"), status("commit-vda", "waiting"), status("commit-vda", "pending"),
                     block("BLOCK_JOB_COMPLETED", "commit-vda"), status("commit-vda", "concluded"),
                     status("commit-vda", "null")}),
             std::string("3@/img/top.qcow2 0@/img/base.qcow2 "),
             "active commit: READY on the overlay, COMPLETED on the base, each once");
    }
    {
        BlockJobEventMapper m(active_job());
        t.eq(run(m, {status("commit-vda", "running"), status("commit-vda", "aborting"),
                     block("BLOCK_JOB_COMPLETED", "commit-vda", "No space left on device"),
                     status("commit-vda", "concluded")}),
             std::string("1@/img/top.qcow2 "), "a job that ends with an error: FAILED, on the unchanged top");
    }
    {
        BlockJobEventMapper m(active_job());
        t.eq(run(m, {status("commit-vda", "ready"), block("BLOCK_JOB_CANCELLED", "commit-vda"),
                     status("commit-vda", "concluded")}),
             std::string("3@/img/top.qcow2 2@/img/top.qcow2 "), "a cancelled job: READY, then CANCELED");
    }
    {
        BlockJobEventMapper m(active_job());
        t.eq(run(m, {status("commit-vda", "created"), status("commit-vda", "concluded")}), std::string("1@/img/top.qcow2 "),
             "a job that concluded without completing: FAILED");
    }
    {
        BlockJobEventMapper m(active_job());
        t.eq(run(m, {status("snapshot-delete", "ready"), block("BLOCK_JOB_COMPLETED", "commit-vdb"),
                     status("commit-vdb", "concluded"), QmpEvent{"STOP", qemu::QValue(), 0, 0},
                     QmpEvent{"JOB_STATUS_CHANGE", QDict{{"id", "commit-vda"}}, 0, 0},
                     block("BLOCK_JOB_ERROR", "commit-vda")}),
             std::string(), "other jobs, other events, malformed data and I/O errors publish nothing");
    }
    return t.finish();
}
