// raii.hh - owning wrappers for the C resources virtsnap touches.
//
// One generic deleter turns any free function into a unique_ptr deleter, so
// libxml2 documents, GLib strings, GObjects and friends are released on every
// path. Only the users of GObjectPtr need to link gobject-2.0 (gio does).
#pragma once

#include <glib-object.h>
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
// Any memory GLib hands over for g_free (gchar * has GCharPtr).
template <typename T>
using GMallocPtr = std::unique_ptr<T, CFree<g_free>>;
// A NULL-terminated string array (g_strsplit, g_environ_setenv ...).
using GStrvPtr = std::unique_ptr<gchar *, CFree<g_strfreev>>;
// One reference to a GObject instance (GSubprocess, GSocket ...), dropped with g_object_unref.
template <typename T>
using GObjectPtr = std::unique_ptr<T, CFree<g_object_unref>>;

// Takes a reference of our own to an object GLib lends ("transfer none").
template <typename T>
GObjectPtr<T> gobject_ref(T *object) {
    return GObjectPtr<T>(object ? static_cast<T *>(g_object_ref(object)) : nullptr);
}

// Adapts an owning pointer to a C out-parameter (GError **, gchar ** ...):
//   GErrorPtr err; g_dir_make_tmp("x-XXXXXX", out_ptr(err));
// The pointer is set when the full expression ends; any old value is freed.
template <typename Ptr>
class OutPtr {
public:
    explicit OutPtr(Ptr &owner) : owner_(owner) {}
    OutPtr(const OutPtr &) = delete;
    OutPtr &operator=(const OutPtr &) = delete;
    ~OutPtr() { owner_.reset(raw_); }
    operator typename Ptr::pointer *() { return &raw_; }

private:
    Ptr &owner_;
    typename Ptr::pointer raw_ = nullptr;
};

template <typename Ptr>
OutPtr<Ptr> out_ptr(Ptr &owner) { return OutPtr<Ptr>(owner); }

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
