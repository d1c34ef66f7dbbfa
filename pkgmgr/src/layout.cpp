#include "pkgmgr/layout.hpp"

#include <cstdlib>

#include "core/files.hpp"

namespace hoist::pkgmgr {

fs::path NodeLayout::defaultRoot() {
    const char* env = std::getenv("HOIST_ROOT");
    if (env != nullptr && *env != '\0') return fs::path(env);
    return fs::path("/opt/hoist");
}

Result<void> NodeLayout::ensure() const {
    for (const auto& dir : {root, store(), downloads(), generations(), outbox(), state(), run()})
        HOIST_TRY(files::makeDirs(dir));
    return ok();
}

}  // namespace hoist::pkgmgr
