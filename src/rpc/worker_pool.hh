// worker_pool.hh - a fixed set of threads running queued jobs, so a long driver
// call (a snapshot, a save) occupies one worker and never the event loop.
//
// As libvirtd's virThreadPool, there are two kinds of threads: ordinary
// workers take any job in queue order; priority workers (libvirtd's
// prio_workers) take only jobs posted as high priority. Calls libvirt marks
// `@priority: high` in remote_protocol.x (lookups, state queries, destroy)
// never touch a QEMU monitor for long, so they still run when every ordinary
// worker is stuck in a long call.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace virtsnap::rpc {

class WorkerPool {
public:
    // At least one ordinary worker is started; `priority_threads` may be 0.
    explicit WorkerPool(unsigned threads, unsigned priority_threads = 0);
    ~WorkerPool();  // finishes the jobs already queued, then joins
    WorkerPool(const WorkerPool &) = delete;
    WorkerPool &operator=(const WorkerPool &) = delete;

    void post(std::function<void()> job, bool high_priority = false);
    // Waits for queued and running jobs, then stops the threads. Idempotent.
    void shutdown();

private:
    struct Job {
        std::function<void()> fn;
        bool high_priority = false;
    };
    void run(bool priority_worker);
    // The next job a worker of that kind may take, or jobs_.end().
    std::deque<Job>::iterator next_job(bool priority_worker);

    std::mutex mu_;
    std::condition_variable cv_;       // ordinary workers
    std::condition_variable prio_cv_;  // priority workers
    std::deque<Job> jobs_;
    unsigned queued_high_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace virtsnap::rpc
