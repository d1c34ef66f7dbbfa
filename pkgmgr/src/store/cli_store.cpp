#include "../cli_internal.hpp"

namespace hoist::pkgmgr {

void addStoreCommands(Cli& cli) { (void)cli; }

}  // namespace hoist::pkgmgr
