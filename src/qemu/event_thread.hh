// event_thread.hh - a thread running its own GMainContext, and a way to run a
// function on a context and wait for it.
//
// The QMP monitor and the guest agent do their socket I/O and event dispatch
// on a GMainContext. They either get one from the daemon or own an
// EventThread; callers on other threads block on condition variables.
#pragma once

#include <glib.h>

#include <functional>
#include <thread>

namespace virtsnap::qemu {

class EventThread {
public:
    EventThread();
    ~EventThread();
    EventThread(const EventThread &) = delete;
    EventThread &operator=(const EventThread &) = delete;

    GMainContext *context() const { return context_; }

private:
    GMainContext *context_;
    GMainLoop *loop_;
    std::thread thread_;
};

// Runs `fn` on `context` and waits for it: directly when the calling thread
// already owns the context, else from an idle callback of that context. Once
// it returns, no other callback of that context is running, which is what
// makes tearing down a source safe. The context must be iterated by someone.
void invoke_sync(GMainContext *context, const std::function<void()> &fn);

}  // namespace virtsnap::qemu
