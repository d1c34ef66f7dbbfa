#include "../cli_internal.hpp"

namespace hoist::pkgmgr {

void addSetCommands(Cli& cli) { (void)cli; }

}  // namespace hoist::pkgmgr
