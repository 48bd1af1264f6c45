// event_thread.cc - a GMainContext iterated by a dedicated thread.

#include "qemu/event_thread.hh"

#include <condition_variable>
#include <mutex>

namespace virtsnap::qemu {

EventThread::EventThread()
    : context_(g_main_context_new()), loop_(g_main_loop_new(context_, FALSE)) {
    // The thread keeps its own references so that a detached thread (see the
    // destructor) never uses freed objects.
    GMainContext *ctx = g_main_context_ref(context_);
    GMainLoop *loop = g_main_loop_ref(loop_);
    thread_ = std::thread([ctx, loop] {
        g_main_context_push_thread_default(ctx);
        g_main_loop_run(loop);
        g_main_context_pop_thread_default(ctx);
        g_main_loop_unref(loop);
        g_main_context_unref(ctx);
    });
}

EventThread::~EventThread() {
    g_main_loop_quit(loop_);
    // Wake the context in case it is blocked in poll.
    g_main_context_wakeup(context_);
    if (thread_.get_id() == std::this_thread::get_id())
        thread_.detach();  // destroyed from one of its own callbacks: it ends after returning
    else
        thread_.join();
    g_main_loop_unref(loop_);
    g_main_context_unref(context_);
}

namespace {
struct SyncCall {
    const std::function<void()> *fn;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
};

gboolean run_sync_call(gpointer data) {
    auto *call = static_cast<SyncCall *>(data);
    // The lock makes the hand-over visible without relying on GLib's
    // internal synchronisation (which sanitizers cannot see).
    std::unique_lock lock(call->mu);
    const std::function<void()> *fn = call->fn;
    lock.unlock();
    (*fn)();
    lock.lock();
    call->done = true;
    call->cv.notify_all();
    return G_SOURCE_REMOVE;
}
}  // namespace

void invoke_sync(GMainContext *context, const std::function<void()> &fn) {
    if (g_main_context_is_owner(context)) {
        fn();
        return;
    }
    SyncCall call;
    {
        std::lock_guard lock(call.mu);
        call.fn = &fn;
    }
    g_main_context_invoke_full(context, G_PRIORITY_HIGH, run_sync_call, &call, nullptr);
    std::unique_lock lock(call.mu);
    call.cv.wait(lock, [&] { return call.done; });
}

}  // namespace virtsnap::qemu
