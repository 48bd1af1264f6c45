// worker_pool.cc - job queue, ordinary and priority worker threads.

#include "rpc/worker_pool.hh"

#include <algorithm>

namespace virtsnap::rpc {

WorkerPool::WorkerPool(unsigned threads, unsigned priority_threads) {
    if (threads == 0) threads = 1;
    for (unsigned i = 0; i < threads; i++) threads_.emplace_back([this] { run(false); });
    for (unsigned i = 0; i < priority_threads; i++) threads_.emplace_back([this] { run(true); });
}

WorkerPool::~WorkerPool() { shutdown(); }

void WorkerPool::post(std::function<void()> job, bool high_priority) {
    {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        jobs_.push_back(Job{std::move(job), high_priority});
        if (high_priority) queued_high_++;
    }
    cv_.notify_one();
    if (high_priority) prio_cv_.notify_one();
}

void WorkerPool::shutdown() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    prio_cv_.notify_all();
    for (auto &t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

std::deque<WorkerPool::Job>::iterator WorkerPool::next_job(bool priority_worker) {
    if (!priority_worker) return jobs_.begin();
    if (queued_high_ == 0) return jobs_.end();
    return std::find_if(jobs_.begin(), jobs_.end(), [](const Job &j) { return j.high_priority; });
}

void WorkerPool::run(bool priority_worker) {
    auto &cv = priority_worker ? prio_cv_ : cv_;
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(mu_);
            cv.wait(lock, [&] { return stopping_ || next_job(priority_worker) != jobs_.end(); });
            auto it = next_job(priority_worker);
            if (it == jobs_.end()) return;  // stopping, and nothing left for this kind of worker
            job = std::move(it->fn);
            if (it->high_priority) queued_high_--;
            jobs_.erase(it);
        }
        job();
    }
}

}  // namespace virtsnap::rpc
