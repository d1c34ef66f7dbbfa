#include "worker_pool.hpp"

namespace hoist::deploy_coordinator {

WorkerPool::WorkerPool(size_t threads) {
    threads_.reserve(threads);
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        tasks_.clear();
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
}

void WorkerPool::post(Task task) {
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
}

size_t WorkerPool::queued() {
    std::lock_guard lock(mutex_);
    return tasks_.size();
}

void WorkerPool::loop() {
    http::Client client;
    while (true) {
        Task task;
        {
            std::unique_lock lock(mutex_);
            ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
            if (stopping_) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task(client);
    }
}

}  // namespace hoist::deploy_coordinator
