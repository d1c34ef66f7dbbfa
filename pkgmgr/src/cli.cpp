#include "pkgmgr/cli.hpp"

namespace hoist::pkgmgr {

int runCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    (void)args;
    (void)out;
    err << "pkgmgr: not implemented yet\n";
    return 70;
}

}  // namespace hoist::pkgmgr
