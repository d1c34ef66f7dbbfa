#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/http_client.hpp"

namespace hoist::deploy_coordinator {

/// A fixed set of threads for outgoing HTTP, each with its own keep-alive http::Client, so
/// the number of threads and connections stays bounded however large the fleet is.
/// post() is thread-safe; the destructor drops queued tasks and joins.
class WorkerPool {
public:
    using Task = std::function<void(http::Client&)>;

    explicit WorkerPool(size_t threads);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void post(Task task);
    size_t queued();

private:
    void loop();

    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Task> tasks_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace hoist::deploy_coordinator
