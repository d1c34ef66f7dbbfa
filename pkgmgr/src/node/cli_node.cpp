#include "../cli_internal.hpp"

namespace hoist::pkgmgr {

void addNodeCommands(Cli& cli) { (void)cli; }

}  // namespace hoist::pkgmgr
