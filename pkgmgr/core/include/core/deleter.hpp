#pragma once

#include <memory>

namespace hoist {

/// A unique_ptr deleter that calls `free_fn` (Nix's `Deleter`): one template instead of a
/// struct per C handle. `Handle<archive, archive_read_free>` owns an archive read handle.
template <auto free_fn>
struct Deleter {
    template <typename T>
    void operator()(T* p) const noexcept {
        free_fn(p);
    }
};

template <typename T, auto free_fn>
using Handle = std::unique_ptr<T, Deleter<free_fn>>;

}  // namespace hoist
