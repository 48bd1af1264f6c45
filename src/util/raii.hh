// raii.hh - owning wrappers for the C resources virtsnap touches.
//
// One generic deleter turns any free function into a unique_ptr deleter, so
// libxml2 documents, GLib strings and friends are released on every path.
#pragma once

#include <glib.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include <memory>
#include <utility>

#include <unistd.h>

namespace virtsnap {

template <auto FreeFn>
struct CFree {
    template <typename T>
    void operator()(T *p) const { if (p) FreeFn(p); }
};

using XmlDocPtr = std::unique_ptr<xmlDoc, CFree<xmlFreeDoc>>;
using XPathContextPtr = std::unique_ptr<xmlXPathContext, CFree<xmlXPathFreeContext>>;
using XPathObjectPtr = std::unique_ptr<xmlXPathObject, CFree<xmlXPathFreeObject>>;
using XmlCharPtr = std::unique_ptr<xmlChar, CFree<+[](xmlChar *p) { xmlFree(p); }>>;
using GCharPtr = std::unique_ptr<gchar, CFree<g_free>>;
using GErrorPtr = std::unique_ptr<GError, CFree<g_error_free>>;
using GMainContextPtr = std::unique_ptr<GMainContext, CFree<g_main_context_unref>>;
using GMainLoopPtr = std::unique_ptr<GMainLoop, CFree<g_main_loop_unref>>;
using GSourcePtr = std::unique_ptr<GSource, CFree<+[](GSource *s) { g_source_destroy(s); g_source_unref(s); }>>;

// A file descriptor closed on destruction.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd &&o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd &operator=(UniqueFd &&o) noexcept {
        if (this != &o) { reset(); fd_ = std::exchange(o.fd_, -1); }
        return *this;
    }
    UniqueFd(const UniqueFd &) = delete;
    UniqueFd &operator=(const UniqueFd &) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// Runs a callable at scope exit unless released (LLVM's scope_exit).
template <typename F>
class ScopeExit {
public:
    explicit ScopeExit(F f) : f_(std::move(f)) {}
    ScopeExit(const ScopeExit &) = delete;
    ScopeExit &operator=(const ScopeExit &) = delete;
    ~ScopeExit() { if (armed_) f_(); }
    void release() { armed_ = false; }

private:
    F f_;
    bool armed_ = true;
};

}  // namespace virtsnap
