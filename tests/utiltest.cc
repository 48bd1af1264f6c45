// utiltest.cc - unit tests for src/util: errors, Result, XML writer and
// parser limits, atomic files, deferred durability, safe names, UUIDs,
// logging filters.

#include "tap.hh"

#include "util/deferred_sync.hh"
#include "util/error.hh"
#include "util/file.hh"
#include "util/log.hh"
#include "util/result.hh"
#include "util/uuid.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <cstdlib>
#include <string>

#include <chrono>

#include <sys/stat.h>
#include <unistd.h>

using namespace virtsnap;

namespace {

Result<int> parse_positive(int v) {
    if (v <= 0) return fail(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "value must be positive");
    return v;
}

Result<int> doubled(int v) {
    int x = TRY(parse_positive(v));
    return x * 2;
}

void test_errors(test::Tap &t) {
    Error e = make_error(VIR_ERR_INVALID_ARG, VIR_FROM_QEMU, "flag X needs Y");
    t.eq(e.message(), std::string("invalid argument: flag X needs Y"), "invalid-arg message has libvirt prefix");
    t.eq(make_error(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain with matching name 'x'").message(),
         std::string("Domain not found: no domain with matching name 'x'"), "no-domain message");
    t.eq(make_error(VIR_ERR_XML_DETAIL, VIR_FROM_XML, "bad").message(), std::string("bad"),
         "xml-detail message is the bare detail");
    t.eq(make_error(VIR_ERR_OPERATION_DENIED, VIR_FROM_NONE, "").message(),
         std::string("operation forbidden for read only access"), "message without detail");
    Error s = make_system_error(VIR_FROM_NONE, ENOENT, "cannot open 'x'");
    t.eq(s.message(), std::string("cannot open 'x': No such file or directory"), "system error appends strerror");
    t.eq(int(s.code), int(VIR_ERR_SYSTEM_ERROR), "system error code");
    t.eq(int(VIR_ERR_NO_DOMAIN_SNAPSHOT), 72, "codes are libvirt's numbers");
}

void test_result(test::Tap &t) {
    auto good = doubled(4);
    t.ok(good.has_value() && *good == 8, "TRY yields the value");
    auto bad = doubled(-1);
    t.ok(!bad.has_value() && bad.error().code == VIR_ERR_INVALID_ARG, "TRY propagates the first error");
    Status st = ok();
    t.ok(st.has_value(), "Status ok");
}

void test_writer(test::Tap &t) {
    t.eq(xml::escape("a<b>&'\"\x01\tz"), std::string("a&lt;b&gt;&amp;&apos;&quot;\tz"), "libvirt escaping");
    xml::Writer w;
    w.open("domainsnapshot");
    w.text_element("name", "s'1");
    w.empty("memory", {{"snapshot", "no"}, {"file", std::nullopt}});
    {
        xml::Element disk(w, "disk");
        disk.attr("name", "vda");
        disk.attr("snapshot", "external");
        disk.children().empty("source", {{"file", "/a b"}});
        disk.finish();
    }
    {
        xml::Element e(w, "disk");
        e.attr("name", "vdb");
        e.finish();
    }
    {
        xml::Element e(w, "nothing");
        e.finish();
    }
    w.close("domainsnapshot");
    t.eq_text(w.str(),
              "<domainsnapshot>\n"
              "  <name>s&apos;1</name>\n"
              "  <memory snapshot='no'/>\n"
              "  <disk name='vda' snapshot='external'>\n"
              "    <source file='/a b'/>\n"
              "  </disk>\n"
              "  <disk name='vdb'/>\n"
              "</domainsnapshot>\n",
              "writer layout matches libvirt");

    auto doc = xml::parse("<a x=\"1\"><b>t</b>\n  <c/><d><e y='&quot;'/></d></a>", "t", VIR_FROM_NONE);
    t.ok(doc.has_value(), "parse simple document");
    if (doc) {
        xml::Writer w2(2);
        w2.node(doc->root().raw());
        t.eq_text(w2.str(),
                  "  <a x='1'>\n    <b>t</b>\n    <c/>\n    <d>\n      <e y='&quot;'/>\n    </d>\n  </a>\n",
                  "verbatim node re-emitted in libvirt layout");
    }
}

void test_parser_limits(test::Tap &t) {
    auto r = xml::parse("<a><b></a>", "(string)", VIR_FROM_DOMAIN);
    t.ok(!r && r.error().code == VIR_ERR_XML_DETAIL, "malformed XML is XML_DETAIL");
    auto dtd = xml::parse("<!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><a>&x;</a>", "(string)",
                          VIR_FROM_DOMAIN);
    t.ok(!dtd, "document type declarations and external entities are refused");
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += "<a>";
    for (int i = 0; i < 200; ++i) deep += "</a>";
    t.ok(!xml::parse(deep, "(string)", VIR_FROM_DOMAIN), "nesting beyond the depth limit is refused");
    std::string big(xml::kMaxDocumentBytes + 10, ' ');
    t.ok(!xml::parse("<a>" + big + "</a>", "(string)", VIR_FROM_DOMAIN), "oversized document refused");
    auto root = xml::parse_with_root("<domain/>", "(string)", "domainsnapshot", VIR_FROM_DOMAIN_SNAPSHOT);
    t.ok(!root && root.error().message() == "XML error: expecting root element of 'domainsnapshot', not 'domain'",
         "wrong root element wording");
}

void test_files(test::Tap &t) {
    std::string dir = test::temp_dir("util");
    t.ok(file::make_dirs(dir + "/x/y/z").has_value(), "make_dirs creates nested directories");
    std::string path = dir + "/x/y/z/f.xml";
    t.ok(file::write_atomic(path, "one").has_value(), "atomic write");
    t.ok(file::write_atomic(path, "two").has_value(), "atomic rewrite");
    auto back = file::read(path, 100);
    t.ok(back && *back == "two", "read back the replacement");
    t.ok(!file::exists(path + ".new"), "no temporary file left");
    struct stat st;
    t.ok(::stat(path.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600, "file mode 0600");
    t.ok(!file::read(path, 2), "size limit enforced on read");
    t.ok(!file::write_atomic(dir + "/missing/f", "x"), "write into a missing directory fails");
    t.ok(!file::exists(dir + "/missing/f.new"), "failed write leaves no temporary");
    for (const char *bad : {"", ".", "..", "a/b", "../x"})
        t.ok(!file::child_path(dir, bad, ".xml", VIR_FROM_NONE), std::string("unsafe name refused: '") + bad + "'");
    auto p = file::child_path(dir, "..snap", ".xml", VIR_FROM_NONE);
    t.ok(p && *p == dir + "/..snap.xml", "dotted but safe name allowed");
    auto names = file::list_dir(dir + "/x/y/z");
    t.ok(names && names->size() == 1 && (*names)[0] == "f.xml", "list_dir");
    t.ok(file::list_dir(dir + "/nope").has_value(), "list of a missing dir is empty, not an error");
}

void test_deferred_sync(test::Tap &t) {
    std::string dir = test::temp_dir("util-sync");
    DeferredSync &sync = DeferredSync::instance();
    sync.set_delay(std::chrono::milliseconds(20));
    uint64_t noted = sync.noted(), syncs = sync.syncs();
    std::string path = dir + "/f.xml";
    auto first = file::stamp_of(path);
    t.ok(!first, "no stamp for a missing file");
    t.ok(file::write_atomic(path, "one", 0600, VIR_FROM_NONE, file::Durability::Deferred).has_value(),
         "deferred atomic write");
    auto back = file::read(path, 100);
    t.ok(back && *back == "one" && !file::exists(path + ".new"), "in place at once, no temporary left");
    t.ok(sync.noted() == noted + 1, "the write was handed to the syncer");
    t.ok(sync.flush().has_value() && sync.syncs() > syncs, "flush syncs what was noted");
    uint64_t after_flush = sync.syncs();
    t.ok(sync.flush().has_value() && sync.syncs() == after_flush, "nothing pending: flush syncs nothing");
    // The background thread syncs on its own.
    t.ok(file::write_atomic(path, "two", 0600, VIR_FROM_NONE, file::Durability::Deferred).has_value(), "rewrite");
    bool synced = false;
    for (int i = 0; i < 500 && !synced; i++) {
        synced = sync.syncs() > after_flush;
        if (!synced) ::usleep(10000);
    }
    t.ok(synced, "the background thread synced without a flush");
    // Stamps tell versions apart.
    auto s1 = file::stamp_of(path);
    file::FileStamp read_stamp;
    auto text = file::read(path, 100, read_stamp);
    t.ok(s1 && text && *s1 == read_stamp, "read reports the stamp of the version it read");
    t.ok(file::write_atomic(path, "two", 0600, VIR_FROM_NONE, file::Durability::Deferred).has_value(), "same text again");
    auto s2 = file::stamp_of(path);
    t.ok(s2 && !(*s1 == *s2), "a rewrite with the same text is a new version");
    // Immediate mode: Deferred writes are synced by the writer itself.
    sync.set_immediate(true);
    uint64_t before = sync.noted();
    t.ok(file::write_atomic(path, "three", 0600, VIR_FROM_NONE, file::Durability::Deferred).has_value() &&
             sync.noted() == before,
         "immediate mode: nothing deferred");
    sync.set_immediate(false);
    // A noted directory removed before its sync (a domain undefined with its
    // snapshots) still has its filesystem synced, through a parent.
    sync.set_delay(std::chrono::milliseconds(60000));
    std::string doomed = dir + "/doomed";
    t.ok(sync.flush().has_value(), "nothing else pending");
    t.ok(::mkdir(doomed.c_str(), 0700) == 0 &&
             file::write_atomic(doomed + "/g.xml", "x", 0600, VIR_FROM_NONE, file::Durability::Deferred).has_value(),
         "deferred write into a directory about to go");
    t.ok(::unlink((doomed + "/g.xml").c_str()) == 0 && ::rmdir(doomed.c_str()) == 0, "directory removed");
    uint64_t before_gone = sync.syncs();
    t.ok(sync.flush().has_value() && sync.syncs() > before_gone, "flush syncs the filesystem of a removed directory");
    // A burst into one directory: every write counted, one syncfs for all.
    uint64_t burst_noted = sync.noted();
    bool burst_ok = true;
    for (int i = 0; i < 20; i++)
        burst_ok = burst_ok && file::write_atomic(dir + "/burst" + std::to_string(i) + ".xml", "b", 0600,
                                                  VIR_FROM_NONE, file::Durability::Deferred).has_value();
    uint64_t burst_syncs = sync.syncs();
    t.ok(burst_ok && sync.noted() == burst_noted + 20, "a burst of 20 deferred writes is noted 20 times");
    t.ok(sync.flush().has_value() && sync.syncs() == burst_syncs + 1, "and made durable by one sync");
    sync.set_delay(std::chrono::milliseconds(50));
}

void test_uuid(test::Tap &t) {
    auto u = Uuid::parse("9d37b878-a7cc-9f9a-b78f-49b3abad25a8");
    t.ok(u && u->str() == "9d37b878-a7cc-9f9a-b78f-49b3abad25a8", "uuid round trip");
    auto u2 = Uuid::parse("9d37b878a7cc9f9ab78f49b3abad25a8");
    t.ok(u2 && *u2 == *u, "uuid without dashes");
    t.ok(!Uuid::parse("9d37b878-a7cc"), "short uuid refused");
    t.ok(!Uuid::parse("zz37b878a7cc9f9ab78f49b3abad25a8"), "non-hex uuid refused");
    Uuid g = Uuid::generate();
    t.ok(g.str().size() == 36 && g.str()[14] == '4', "generated uuid is version 4");
    t.ok(!(Uuid::generate() == g), "generated uuids differ");
}

void test_log(test::Tap &t) {
    setenv("VIRTSNAP_LOG_LEVEL", "4", 1);
    setenv("VIRTSNAP_LOG_FILTERS", "1:qemu.monitor 3:qemu", 1);
    log::configure_from_env();
    t.ok(log::enabled("qemu.monitor", log::Level::Debug), "filter enables debug for qemu.monitor");
    t.ok(!log::enabled("qemu.process", log::Level::Info), "qemu filter hides info");
    t.ok(log::enabled("qemu.process", log::Level::Warning), "qemu filter shows warnings");
    t.ok(!log::enabled("rpc", log::Level::Warning), "default level applies to other modules");
    unsetenv("VIRTSNAP_LOG_LEVEL");
    unsetenv("VIRTSNAP_LOG_FILTERS");
    log::configure_from_env();
}

}  // namespace

int main() {
    test::Tap t;
    test_errors(t);
    test_result(t);
    test_writer(t);
    test_parser_limits(t);
    test_files(t);
    test_deferred_sync(t);
    test_uuid(t);
    test_log(t);
    return t.finish();
}
