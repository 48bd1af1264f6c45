// tap.hh - the TAP harness every virtsnap test binary uses.
//
// Each check prints "ok N - name" or "not ok N - name" with diagnostics, the
// plan is printed at the end, and meson reads it (protocol: 'tap').
// VIRTSNAP_TEST_REGENERATE=1 makes golden comparisons rewrite the expected file.
#pragma once

#include <string>
#include <string_view>

namespace virtsnap::test {

class Tap {
public:
    Tap() = default;
    Tap(const Tap &) = delete;
    Tap &operator=(const Tap &) = delete;

    bool ok(bool condition, std::string_view name, std::string_view diagnostic = {});
    void skip(std::string_view name, std::string_view reason);
    void note(std::string_view text);
    // Compares text, printing the first differing lines on mismatch.
    bool eq_text(std::string_view got, std::string_view expected, std::string_view name);
    template <typename A, typename B>
    bool eq(const A &got, const B &expected, std::string_view name) {
        bool same = got == expected;
        if (same) return ok(true, name);
        return ok(false, name, "got: " + to_text(got) + "\nexpected: " + to_text(expected));
    }
    // Compares `got` with the file at `expected_path`; regenerates it when asked.
    bool eq_file(std::string_view got, const std::string &expected_path, std::string_view name);

    int failed() const { return failed_; }
    // Prints the plan and returns the process exit status.
    int finish();

private:
    static std::string to_text(const std::string &s) { return s; }
    static std::string to_text(std::string_view s) { return std::string(s); }
    static std::string to_text(const char *s) { return s; }
    template <typename T>
    static std::string to_text(const T &v) { return std::to_string(v); }

    int count_ = 0;
    int failed_ = 0;
};

// Directory of the test sources (fixtures live below it).
std::string source_dir();
// The shared reference directory (../shared next to the checkout), or "" when absent.
std::string shared_dir();
std::string read_text(const std::string &path);
bool regenerate_requested();
// A fresh temporary directory removed at exit unless VIRTSNAP_TEST_KEEP is set.
std::string temp_dir(std::string_view tag);

}  // namespace virtsnap::test
