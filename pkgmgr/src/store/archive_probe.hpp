#pragma once

#include <string>

namespace hoist::pkgmgr::probe {

/// What a file that is not a package holds, for the refusal: "a tar archive compressed with
/// lz4", "data compressed with bzip2", "format 'ZIP 2.0 (deflation)'"; "" when libarchive
/// recognises nothing, or finds a tar archive in a compression packages may use.
/// Reads at most the first MiB of `fd` with pread (the offset is left alone), decompresses
/// only with libarchive's built-in decoders (never an external program), unpacks nothing.
std::string describe(int fd);

}  // namespace hoist::pkgmgr::probe
