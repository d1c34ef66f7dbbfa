#include "../cli_internal.hpp"

namespace hoist::pkgmgr {

void addPublishCommands(Cli& cli) { (void)cli; }

}  // namespace hoist::pkgmgr
