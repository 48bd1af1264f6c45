// jobjournaltest.cc - unit tests for the crash-safe job journal: the record
// format round trip, torn tails at every byte, corruption in the middle, the
// VIRTSNAP_TEST_CRASH_AT hook in forked children, scans and start-up recovery.

#include "tap.hh"

#include "util/file.hh"
#include "util/job_journal.hh"

#include <climits>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <string>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace virtsnap;

namespace {

constexpr const char *kUuid = "c7a5fdbd-cdaf-9455-926a-d65c16db1809";
constexpr const char *kUuid2 = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0";

std::string slurp(const std::string &path) {
    auto r = file::read(path, 1 << 26);
    return r ? *r : std::string();
}

void spit(const std::string &path, std::string_view data) {
    if (!file::write_atomic(path, data)) std::abort();
}

uint64_t size_of(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

JournalHeader header(std::string op, std::string job, const char *uuid = kUuid) {
    return JournalHeader{std::move(op), uuid, std::move(job), JournalFields{{"domain", "vm1"}, {"snapshot", "s1"}}};
}

// Runs `body` in a forked child with VIRTSNAP_TEST_CRASH_AT=crash_at (unset
// when empty); returns the child's exit status, or -1 if it did not exit.
int in_child(const std::string &crash_at, const std::function<int()> &body) {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (crash_at.empty()) ::unsetenv("VIRTSNAP_TEST_CRASH_AT");
        else ::setenv("VIRTSNAP_TEST_CRASH_AT", crash_at.c_str(), 1);
        ::_exit(body());  // _exit: the parent owns the temp dir cleanup
    }
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The job every crash test runs: two disks, a commit, a step after it.
int crash_job(const std::string &dir, const std::string &job) {
    auto j = JobJournal::create(dir, header("snapshot-create", job));
    if (!j) return 1;
    if (!j->intent("pause-cpus") || !j->done("pause-cpus")) return 2;
    for (const char *disk : {"vda", "vdb"}) {
        if (!j->intent("create-overlay", {{"disk", disk}, {"path", std::string("/img/") + disk + ".s1"}})) return 3;
        if (!j->done("create-overlay", {{"disk", disk}})) return 4;
    }
    if (!j->commit({{"overlays", 2}})) return 5;
    if (!j->intent("resume-cpus") || !j->done("resume-cpus")) return 6;
    if (!j->finish("ok")) return 7;
    return 0;
}

void test_crc(test::Tap &t) {
    t.eq(crc32c("123456789"), uint32_t(0xE3069283), "crc32c check value");
    t.eq(crc32c("6789", crc32c("12345")), uint32_t(0xE3069283), "crc32c continues");
}

void test_round_trip(test::Tap &t, const std::string &dir) {
    JournalHeader h{"snapshot-create", "C7A5FDBDCDAF9455926AD65C16DB1809", "7",
                    JournalFields{{"domain", "vm1"}, {"snapshot", "s1"}, {"flags", 0x10}}};
    auto j = JobJournal::create(dir, h);
    if (!t.ok(j.has_value(), "create", j ? "" : j.error().message())) return;
    t.eq(j->path(), dir + "/" + kUuid + ".7.journal", "file named <uuid>.<job>.journal");
    t.eq(j->id(), std::string(kUuid) + ".7", "id is canonical uuid and job");

    std::string odd("a\0b\xff\n", 5);
    JournalFields overlay{{"disk", "vda"}, {"path", "/img/a.s1"}};
    JournalFields weird{{"empty", ""}, {"bytes", odd}, {"min", INT64_MIN}, {"max", INT64_MAX}, {"neg", -1}};
    bool wrote = j->intent("pause-cpus") && j->done("pause-cpus", {{"was_running", 1}}) &&
                 j->intent("create-overlay", overlay) && j->done("create-overlay", weird) &&
                 j->intent("create-overlay", {{"disk", "vdb"}}) && j->commit({{"overlays", 2}}) &&
                 j->intent("write-metadata", {{"path", "/x"}});
    t.ok(wrote, "intent/done/commit append");
    t.ok(j->committed(), "writer knows it committed");

    auto st = JobJournal::read(j->path());
    if (!t.ok(st.has_value(), "read back", st ? "" : st.error().message())) return;
    JournalHeader expect_h = h;
    expect_h.domain_uuid = kUuid;
    t.ok(st->began && st->header == expect_h, "header round trip");
    t.eq(st->steps.size(), size_t(4), "four steps");
    if (st->steps.size() == 4) {
        t.ok(st->steps[0].name == "pause-cpus" && st->steps[0].done && st->steps[0].result.num("was_running") == 1,
             "done carries its fields");
        t.ok(st->steps[1].intent == overlay && st->steps[1].done && st->steps[1].result == weird,
             "strings with NUL, empty strings, int64 extremes round trip");
        t.ok(!st->steps[2].done && st->steps[2].intent.str("disk") == "vdb" && !st->steps[2].after_commit,
             "intent without done");
        t.ok(st->steps[3].after_commit && !st->steps[3].done, "step after commit is marked so");
    }
    t.ok(st->committed && st->commit_fields.num("overlays") == 2, "commit and its fields");
    t.ok(!st->outcome && !st->torn_tail && st->valid_length == st->file_length, "clean, unfinished");
    t.ok(st->find("create-overlay") == &st->steps[2] && !st->done("create-overlay") && st->done("pause-cpus") &&
             !st->intended("nope"),
         "find() returns the latest step of a name");
    auto need = st->steps[1].intent.need_str("path");
    auto missing = st->steps[1].intent.need_num("path");
    t.ok(need && *need == "/img/a.s1" && !missing && missing.error().detail.find("'path'") != std::string::npos,
         "need_str/need_num");

    auto scan = JobJournal::scan(dir);
    t.ok(scan && scan->journals.size() == 1 && scan->damaged.empty() && scan->journals[0].steps == st->steps,
         "scan finds the unfinished journal");

    std::string path = j->path();
    t.ok(j->done("write-metadata") && j->finish("ok"), "finish");
    t.ok(!file::exists(path), "finish removes the file");
    scan = JobJournal::scan(dir);
    t.ok(scan && scan->journals.empty(), "scan after finish is empty");
    auto after = j->intent("late");
    t.ok(!after && after.error().code == VIR_ERR_OPERATION_INVALID, "no records after finish");
}

void test_torn_tail(test::Tap &t, const std::string &dir) {
    auto j = JobJournal::create(dir, header("snapshot-create", "torn"));
    if (!t.ok(j.has_value(), "create journal for torn tails")) return;
    std::string path = j->path();
    uint64_t after_begin = size_of(path);
    if (!j->intent("a", {{"disk", "vda"}}) || !j->done("a") || !j->intent("b", {{"path", std::string(300, 'p')}}))
        return;
    uint64_t before_last = size_of(path);
    if (!j->done("b", {{"size", 12345}})) return;
    uint64_t full = size_of(path);
    std::string bytes = slurp(path);
    t.eq(uint64_t(bytes.size()), full, "journal bytes read");

    std::string tdir = dir + "/cut";
    if (!file::make_dirs(tdir)) return;
    std::string tpath = tdir + "/" + file::basename(path);

    spit(tpath, bytes.substr(0, before_last));
    auto prefix = JobJournal::read(tpath);
    if (!t.ok(prefix && prefix->steps.size() == 2 && !prefix->steps[1].done && !prefix->torn_tail,
              "journal without its last record"))
        return;

    std::string bad;
    for (uint64_t len = before_last + 1; len < full; len++) {
        spit(tpath, bytes.substr(0, len));
        auto st = JobJournal::read(tpath);
        if (!st || !st->torn_tail || st->steps != prefix->steps || st->valid_length != before_last) {
            bad = "truncated at " + std::to_string(len) + (st ? "" : ": " + st.error().message());
            break;
        }
    }
    t.ok(bad.empty(), "torn last record at every byte offset: earlier records intact, tail reported", bad);

    bad.clear();
    for (uint64_t len = 0; len < after_begin; len++) {
        spit(tpath, bytes.substr(0, len));
        auto st = JobJournal::read(tpath);
        // Exactly the magic is a clean (empty) file; any other prefix is torn.
        if (!st || st->began || !st->steps.empty() || st->torn_tail != (len > 0 && len != 8)) {
            bad = "truncated at " + std::to_string(len) + (st ? "" : ": " + st.error().message());
            break;
        }
    }
    t.ok(bad.empty(), "torn begin record at every byte offset: journal never began", bad);

    spit(tpath, bytes + std::string(4096, '\0'));
    auto zeros = JobJournal::read(tpath);
    t.ok(zeros && zeros->torn_tail && zeros->steps.size() == 2 && zeros->steps[1].done &&
             zeros->valid_length == full,
         "zero-filled tail is torn, all records kept");

    std::string flipped = bytes;
    flipped.back() = char(flipped.back() ^ 0x40);
    spit(tpath, flipped);
    auto last_bad = JobJournal::read(tpath);
    t.ok(last_bad && last_bad->torn_tail && last_bad->steps == prefix->steps,
         "checksum mismatch in the last record is a torn tail");
    spit(tpath, flipped + std::string(512, '\0'));
    auto last_zeros = JobJournal::read(tpath);
    t.ok(last_zeros && last_zeros->torn_tail && last_zeros->steps == prefix->steps,
         "damaged last record followed by zeros is a torn tail");

    // Recovery appends after a torn tail only once it is cut off.
    spit(tpath, bytes.substr(0, full - 3));
    auto torn = JobJournal::read(tpath);
    if (!torn) return;
    auto resumed = JobJournal::resume(*torn);
    t.ok(resumed && resumed->intent("undo-b") && resumed->done("undo-b"), "resume a torn journal and append");
    auto again = JobJournal::read(tpath);
    t.ok(again && !again->torn_tail && again->steps.size() == 3 && again->steps[2].name == "undo-b" &&
             again->steps[2].done,
         "appended records follow the intact ones");
    t.ok(resumed && resumed->finish("rolled-back") && !file::exists(tpath), "resumed journal finishes");
}

void test_corrupt_middle(test::Tap &t, const std::string &dir) {
    auto j = JobJournal::create(dir, header("snapshot-delete", "mid"));
    if (!t.ok(j.has_value(), "create journal for corruption")) return;
    std::string path = j->path();
    uint64_t start = size_of(path);
    if (!j->intent("merge", {{"disk", "vda"}, {"base", "/img/a.qcow2"}})) return;
    uint64_t end = size_of(path);
    if (!j->done("merge") || !j->commit() || !j->intent("remove-metadata")) return;
    std::string bytes = slurp(path);

    std::string bad;
    std::string where = "corrupt at offset " + std::to_string(start);
    for (uint64_t i = start; i < end; i++) {
        std::string copy = bytes;
        copy[i] = char(copy[i] ^ 0xff);
        spit(path, copy);
        auto st = JobJournal::read(path);
        if (st || st.error().code != VIR_ERR_INTERNAL_ERROR || st.error().detail.find(where) == std::string::npos) {
            bad = "byte " + std::to_string(i) + (st ? " accepted" : ": " + st.error().message());
            break;
        }
    }
    t.ok(bad.empty(), "any damaged byte of a middle record is an error naming its offset", bad);

    std::string copy = bytes;
    copy[start + 20] = char(copy[start + 20] ^ 1);
    spit(path, copy);
    auto scan = JobJournal::scan(dir);
    t.ok(scan && scan->journals.empty() && scan->damaged.size() == 1 && scan->damaged[0].first == path,
         "scan reports the damaged journal");
    if (scan && !scan->damaged.empty()) t.note(scan->damaged[0].second.message());
    JournalRecovery rec;
    bool called = false;
    rec.add("snapshot-delete", [&](JobJournal &, const JournalState &) {
        called = true;
        return ok();
    });
    auto report = rec.run(dir);
    t.ok(report && report->failed.size() == 1 && !called && file::exists(path),
         "recovery keeps a damaged journal for inspection");

    copy = bytes;
    copy[1] = 'X';
    spit(path, copy);
    auto magic = JobJournal::read(path);
    t.ok(!magic && magic.error().detail.find("bad magic") != std::string::npos, "bad magic is an error");

    spit(dir + "/" + std::string(kUuid2) + ".other.journal", bytes);
    auto renamed = JobJournal::read(dir + "/" + std::string(kUuid2) + ".other.journal");
    t.ok(!renamed && renamed.error().detail.find("file name does not match") != std::string::npos,
         "a journal under another job's name is refused");
}

void test_crash_hook(test::Tap &t, const std::string &dir) {
    struct Case {
        const char *spec;
        const char *job;
        std::function<bool(const JournalState &)> check;
        const char *what;
    };
    const Case cases[] = {
        {"begin", "c-begin", [](const JournalState &s) { return s.began && s.steps.empty(); }, "begin"},
        {"create-overlay", "c-intent",
         [](const JournalState &s) {
             return s.steps.size() == 2 && s.done("pause-cpus") && s.intended("create-overlay") &&
                    !s.done("create-overlay") && !s.committed;
         },
         "intent recorded, done not"},
        {"create-overlay:done", "c-done",
         [](const JournalState &s) { return s.steps.size() == 2 && s.done("create-overlay"); }, "done recorded"},
        {"create-overlay:intent#2", "c-second",
         [](const JournalState &s) {
             return s.steps.size() == 3 && s.steps[1].done && !s.steps[2].done &&
                    s.steps[2].intent.str("disk") == "vdb";
         },
         "second occurrence"},
        {"commit", "c-commit",
         [](const JournalState &s) { return s.committed && s.steps.size() == 3 && !s.intended("resume-cpus"); },
         "committed, nothing after"},
        {"resume-cpus:done", "c-after",
         [](const JournalState &s) { return s.committed && s.done("resume-cpus") && s.steps.back().after_commit; },
         "step after commit"},
        {"end", "c-end", [](const JournalState &s) { return s.outcome == "ok"; }, "ended, file not yet removed"},
    };
    for (const auto &c : cases) {
        std::string job = c.job;
        int rc = in_child(c.spec, [&] { return crash_job(dir, job); });
        t.eq(rc, 137, std::string("VIRTSNAP_TEST_CRASH_AT=") + c.spec + " exits 137");
        auto st = JobJournal::read(dir + "/" + kUuid + "." + job + ".journal");
        t.ok(st && !st->torn_tail && c.check(*st), std::string("after crash at ") + c.spec + ": " + c.what,
             st ? "" : st.error().message());
    }
    int rc = in_child("", [&] { return crash_job(dir, "c-none"); });
    t.ok(rc == 0 && !file::exists(dir + "/" + kUuid + ".c-none.journal"), "without the hook the job completes");
    rc = in_child("create-overlay:bogus", [&] { return crash_job(dir, "c-bogus"); });
    t.ok(rc == 0 && !file::exists(dir + "/" + kUuid + ".c-bogus.journal"), "a malformed hook is ignored");
    rc = in_child("no-such-step", [&] { return crash_job(dir, "c-other"); });
    t.eq(rc, 0, "a hook naming another step does not fire");
}

void test_scan_dirs(test::Tap &t, const std::string &dir) {
    auto missing = JobJournal::scan(dir + "/does-not-exist");
    t.ok(missing && missing->journals.empty() && missing->damaged.empty(), "scan of a missing directory");
    std::string empty = dir + "/empty";
    if (!file::make_dirs(empty)) return;
    auto none = JobJournal::scan(empty);
    t.ok(none && none->journals.empty() && none->damaged.empty(), "scan of an empty directory");
    spit(empty + "/notes.xml", "<x/>");
    spit(empty + "/.journal", "junk");
    spit(empty + "/a.journal.new", "junk");
    auto other = JobJournal::scan(empty);
    t.ok(other && other->journals.empty() && other->damaged.empty(), "scan ignores other files");
}

void test_many(test::Tap &t, const std::string &dir) {
    const char *uuids[] = {kUuid, kUuid2, "0f3c5a8e-93a9-4f3a-b7a4-2b8f19b0c001"};
    unsigned kept = 0;
    bool ok_all = true;
    for (int d = 0; d < 3; d++) {
        for (int n = 0; n < 20; n++) {
            auto j = JobJournal::create(dir, header(n % 2 ? "snapshot-revert" : "snapshot-create",
                                                    "job" + std::to_string(n), uuids[d]));
            ok_all = ok_all && j && j->intent("step", {{"n", n}, {"d", d}});
            if (!j) continue;
            if (n % 3 == 0) ok_all = ok_all && j->done("step") && j->finish("ok");
            else kept++;
        }
    }
    t.ok(ok_all, "60 journals written");
    auto scan = JobJournal::scan(dir);
    if (!t.ok(scan.has_value(), "scan many")) return;
    t.eq(unsigned(scan->journals.size()), kept, "scan returns exactly the unfinished journals");
    bool consistent = scan->damaged.empty();
    for (size_t i = 0; i < scan->journals.size(); i++) {
        const auto &s = scan->journals[i];
        if (i && !(scan->journals[i - 1].path < s.path)) consistent = false;
        auto n = s.steps.empty() ? std::nullopt : s.steps[0].intent.num("n");
        if (!n || s.header.job_id != "job" + std::to_string(*n) || *n % 3 == 0 ||
            s.header.operation != (*n % 2 ? "snapshot-revert" : "snapshot-create"))
            consistent = false;
    }
    t.ok(consistent, "each journal parsed with its own header and steps, sorted by name");
    auto auto_id = JobJournal::create(dir, header("snapshot-create", ""));
    auto auto_id2 = JobJournal::create(dir, header("snapshot-create", ""));
    t.ok(auto_id && auto_id2 && !auto_id->header().job_id.empty() &&
             auto_id->header().job_id != auto_id2->header().job_id,
         "job ids are generated when not given", auto_id ? auto_id->header().job_id : "");
    t.ok(auto_id && auto_id->finish("ok") && auto_id2 && auto_id2->finish("ok"), "generated-id journals finish");
}

void test_misuse(test::Tap &t, const std::string &dir) {
    auto j = JobJournal::create(dir, header("snapshot-create", "misuse"));
    if (!t.ok(j.has_value(), "create journal for misuse")) return;
    auto d = j->done("never-started");
    t.ok(!d && d.error().code == VIR_ERR_OPERATION_INVALID, "done without intent is refused");
    bool names_refused = true;
    for (const char *name : {"", "a b", "x:y", "n#2", "commit", "begin", "end", "t\tab"}) {
        auto st = j->intent(name);
        if (st || st.error().code != VIR_ERR_INVALID_ARG) names_refused = false;
    }
    t.ok(names_refused, "bad step names are refused");
    auto c1 = j->commit();
    auto c2 = j->commit();
    t.ok(c1 && !c2, "only one commit");
    auto dup = JobJournal::create(dir, header("snapshot-create", "misuse"));
    t.ok(!dup && dup.error().code == VIR_ERR_SYSTEM_ERROR, "a job cannot have two journals");
    auto bad_uuid = JobJournal::create(dir, header("snapshot-create", "x", "not-a-uuid"));
    t.ok(!bad_uuid && bad_uuid.error().code == VIR_ERR_INVALID_ARG, "bad domain uuid is refused");
    auto bad_job = JobJournal::create(dir, header("snapshot-create", "../x"));
    auto bad_job2 = JobJournal::create(dir, header("snapshot-create", "a.b"));
    t.ok(!bad_job && !bad_job2, "job ids that are not [A-Za-z0-9_-] are refused");
    auto bad_op = JobJournal::create(dir, header("", "y"));
    t.ok(!bad_op, "empty operation is refused");
    auto st = JobJournal::read(j->path());
    t.ok(st && st->steps.empty() && st->committed, "refused calls wrote nothing");
    {
        JobJournal moved = std::move(*j);
        t.ok(moved.intent("after-move") && moved.finish("ok") && !file::exists(moved.path()),
             "a moved writer keeps working");
    }
    auto gone = JobJournal::create(dir, header("snapshot-create", "dropped"));
    std::string gone_path = gone ? gone->path() : "";
    if (gone) {
        JobJournal dropped = std::move(*gone);
        (void)dropped.intent("x");
    }
    t.ok(file::exists(gone_path), "a writer destroyed without finish leaves its journal");
    (void)file::remove(gone_path);
}

void test_write_failure(test::Tap &t, const std::string &dir) {
    int rc = in_child("", [&] {
        auto j = JobJournal::create(dir, header("snapshot-create", "efbig"));
        if (!j) return 1;
        if (!j->intent("small")) return 2;
        uint64_t len = size_of(j->path());
        ::signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {rlim_t(len + 40), rlim_t(RLIM_INFINITY)};
        if (::setrlimit(RLIMIT_FSIZE, &lim) < 0) return 3;
        auto big = j->intent("big", {{"path", std::string(200, 'x')}});
        if (big || big.error().code != VIR_ERR_SYSTEM_ERROR) return 4;
        auto next = j->done("small");
        if (next || next.error().detail.find("earlier failure") == std::string::npos) return 5;
        auto st = JobJournal::read(j->path());
        if (!st || st->torn_tail || st->steps.size() != 1 || st->file_length != len) return 6;
        std::string path = j->path();
        if (!j->finish("rolled-back") || file::exists(path)) return 7;
        return 0;
    });
    t.eq(rc, 0, "a failed append breaks the writer, leaves no partial record, finish still removes the file");
}

void test_recovery(test::Tap &t, const std::string &dir) {
    // J1: snapshot-create, not committed, torn tail -> rolled back by the handler.
    {
        auto j = JobJournal::create(dir, header("snapshot-create", "r1"));
        if (!j || !j->intent("create-overlay", {{"path", "/img/a.s1"}}) || !j->done("create-overlay")) return;
        std::string p = j->path();
        std::string bytes = slurp(p);
        spit(p, bytes.substr(0, bytes.size() - 2));
    }
    // J2: snapshot-revert, committed.
    {
        auto j = JobJournal::create(dir, header("snapshot-revert", "r2"));
        if (!j || !j->intent("stop-qemu") || !j->commit()) return;
    }
    // J3: snapshot-delete whose handler fails; J4: no handler.
    { auto j = JobJournal::create(dir, header("snapshot-delete", "r3")); if (!j) return; }
    { auto j = JobJournal::create(dir, header("mystery", "r4")); if (!j) return; }
    // J5: ended but not removed; J6: never began.
    int rc = in_child("end", [&] { return crash_job(dir, "r5"); });
    spit(dir + "/" + kUuid + ".r6.journal", std::string("VSJR", 4));

    std::vector<std::string> seen;
    JournalRecovery rec;
    rec.add("snapshot-create", [&](JobJournal &journal, const JournalState &st) -> Status {
        seen.push_back(st.header.job_id + (st.committed ? ":fwd" : ":back"));
        auto path = TRY(st.steps.at(0).intent.need_str("path"));
        TRY(journal.intent("remove-overlay", {{"path", path}}));
        TRY(journal.done("remove-overlay"));
        return ok();
    });
    rec.add("snapshot-revert", [&](JobJournal &journal, const JournalState &st) -> Status {
        seen.push_back(st.header.job_id + (st.committed ? ":fwd" : ":back"));
        return journal.finish("completed");
    });
    rec.add("snapshot-delete", [&](JobJournal &journal, const JournalState &st) -> Status {
        seen.push_back(st.header.job_id + (st.committed ? ":fwd" : ":back"));
        TRY(journal.intent("undo-merge"));
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_NONE, "QEMU is gone");
    });
    t.ok(rec.handles("snapshot-create") && !rec.handles("mystery"), "handles()");

    auto report = rec.run(dir);
    if (!t.ok(report.has_value(), "recovery run", report ? "" : report.error().message())) return;
    t.eq(rc, 137, "ended journal prepared by a crash at end");
    t.eq(report->recovered, 2u, "two journals recovered");
    t.eq(report->cleaned, 2u, "ended and never-begun journals cleaned without a handler");
    t.eq(report->failed.size(), size_t(2), "failing handler and unknown operation reported");
    std::string order;
    for (auto &s : seen) order += s + " ";
    t.eq(order, std::string("r1:back r2:fwd r3:back "), "handlers dispatched by operation with the committed flag");
    std::string base = dir + "/" + kUuid;
    t.ok(!file::exists(base + ".r1.journal") && !file::exists(base + ".r2.journal") &&
             !file::exists(base + ".r5.journal") && !file::exists(base + ".r6.journal"),
         "recovered and cleaned journals are removed");
    auto r3 = JobJournal::read(base + ".r3.journal");
    t.ok(r3 && r3->intended("undo-merge") && !r3->done("undo-merge"),
         "a failed recovery keeps the journal with the steps it recorded");
    bool unknown_named = false;
    for (auto &[path, err] : report->failed)
        if (path == base + ".r4.journal" && err.detail.find("no recovery for job operation 'mystery'") != std::string::npos)
            unknown_named = true;
    t.ok(unknown_named && file::exists(base + ".r4.journal"), "unknown operation is an error, journal kept");

    auto again = rec.run(dir);
    t.ok(again && again->recovered == 0 && again->failed.size() == 2, "a second run retries only what failed");
}

}  // namespace

int main() {
    test::Tap t;
    ::unsetenv("VIRTSNAP_TEST_CRASH_AT");
    std::string root = test::temp_dir("jobjournal");
    if (root.empty()) {
        t.ok(false, "temporary directory");
        return t.finish();
    }
    auto sub = [&](const char *name) {
        std::string d = root + "/" + name;
        (void)file::make_dirs(d);
        return d;
    };
    test_crc(t);
    test_round_trip(t, sub("roundtrip"));
    test_torn_tail(t, sub("torn"));
    test_corrupt_middle(t, sub("corrupt"));
    test_crash_hook(t, sub("crash"));
    test_scan_dirs(t, sub("scan"));
    test_many(t, sub("many"));
    test_misuse(t, sub("misuse"));
    test_write_failure(t, sub("efbig"));
    test_recovery(t, sub("recovery"));
    return t.finish();
}
