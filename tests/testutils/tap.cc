// tap.cc - TAP output, golden-file comparison and test paths.

#include "tap.hh"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <glib.h>
#include <unistd.h>

#ifndef VIRTSNAP_TEST_SRCDIR
#error "VIRTSNAP_TEST_SRCDIR must be defined by the build"
#endif

namespace virtsnap::test {

namespace {

void print_diag(std::string_view text) {
    std::string line;
    std::istringstream in{std::string(text)};
    while (std::getline(in, line)) std::printf("#   %s\n", line.c_str());
}

std::vector<std::string> split_lines(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == '\n') { out.push_back(cur); cur.clear(); }
        else cur += c;
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

// A test name stays on its line: control characters are shown as escapes
// ('#' would start a TAP directive, so it is escaped too).
std::string one_line(std::string_view name) {
    std::string out;
    for (char c : name) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '#') out += "\\#";
        else if (static_cast<unsigned char>(c) < 0x20) out += "?";
        else out += c;
    }
    return out;
}

}  // namespace

bool Tap::ok(bool condition, std::string_view name_text, std::string_view diagnostic) {
    ++count_;
    if (!condition) ++failed_;
    std::string name = one_line(name_text);
    std::printf("%s %d - %s\n", condition ? "ok" : "not ok", count_, name.c_str());
    if (!condition && !diagnostic.empty()) print_diag(diagnostic);
    std::fflush(stdout);
    return condition;
}

void Tap::skip(std::string_view name, std::string_view reason) {
    ++count_;
    std::printf("ok %d - %.*s # SKIP %.*s\n", count_, int(name.size()), name.data(), int(reason.size()),
                reason.data());
    std::fflush(stdout);
}

void Tap::note(std::string_view text) { print_diag(text); }

bool Tap::eq_text(std::string_view got, std::string_view expected, std::string_view name) {
    if (got == expected) return ok(true, name);
    auto g = split_lines(got), e = split_lines(expected);
    std::ostringstream d;
    size_t i = 0;
    while (i < g.size() && i < e.size() && g[i] == e[i]) ++i;
    d << "first difference at line " << (i + 1) << "\n";
    for (size_t k = (i >= 2 ? i - 2 : 0); k < i; ++k) d << "  " << g[k] << "\n";
    for (size_t k = i; k < e.size() && k < i + 4; ++k) d << "- " << e[k] << "\n";
    for (size_t k = i; k < g.size() && k < i + 4; ++k) d << "+ " << g[k] << "\n";
    if (got.size() != expected.size() && g == e) d << "(line breaks or trailing newline differ)\n";
    return ok(false, name, d.str());
}

bool Tap::eq_file(std::string_view got, const std::string &expected_path, std::string_view name) {
    if (regenerate_requested()) {
        std::ofstream out(expected_path, std::ios::binary);
        out << got;
        return ok(bool(out), std::string(name) + " (regenerated)");
    }
    return eq_text(got, read_text(expected_path), name);
}

int Tap::finish() {
    std::printf("1..%d\n", count_);
    std::fflush(stdout);
    return failed_ ? 1 : 0;
}

std::string source_dir() {
    const char *env = std::getenv("VIRTSNAP_TEST_SRCDIR");
    return env && *env ? env : VIRTSNAP_TEST_SRCDIR;
}

std::string shared_dir() {
    const char *env = std::getenv("VIRTSNAP_SHARED_DIR");
    std::string dir = env && *env ? env : source_dir() + "/../../shared";
    return g_file_test(dir.c_str(), G_FILE_TEST_IS_DIR) ? dir : std::string();
}

std::string read_text(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool regenerate_requested() {
    const char *env = std::getenv("VIRTSNAP_TEST_REGENERATE");
    return env && std::string_view(env) == "1";
}

std::string temp_dir(std::string_view tag) {
    std::string templ = std::string(g_get_tmp_dir()) + "/virtsnap-" + std::string(tag) + "-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) return {};
    std::string dir(buf.data());
    if (!std::getenv("VIRTSNAP_TEST_KEEP")) {
        static std::vector<std::string> to_remove;
        static bool registered = false;
        to_remove.push_back(dir);
        if (!registered) {
            registered = true;
            std::atexit([] {
                for (auto &d : to_remove) {
                    std::string cmd = "rm -rf '" + d + "'";
                    if (std::system(cmd.c_str()) != 0) { /* best effort */ }
                }
            });
        }
    }
    return dir;
}

}  // namespace virtsnap::test
