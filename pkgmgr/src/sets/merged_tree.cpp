#include "merged_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <map>

namespace hoist::pkgmgr {

namespace {

struct Holder {
    std::size_t index = 0;
    bool folder = false;
};

// The entries of one package's folder: name -> is a folder (symlinks are not followed).
Result<void> readFolder(const StoredPackage& pkg, std::size_t index, const std::string& rel,
                        std::map<std::string, std::vector<Holder>>& children) {
    auto path = pkg.path / rel;
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr)
        return failErrno(Errc::Io, errno, "set: cannot read '", path.string(), "' of '",
                         pkg.info.id().str(), "'");
    errno = 0;
    while (const dirent* e = ::readdir(dir)) {
        std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        bool folder = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st {};
            folder = ::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                     S_ISDIR(st.st_mode);
        }
        children[std::string(name)].push_back(Holder{index, folder});
        errno = 0;
    }
    int err = errno;
    ::closedir(dir);
    if (err != 0)
        return failErrno(Errc::Io, err, "set: cannot read '", path.string(), "' of '",
                         pkg.info.id().str(), "'");
    return ok();
}

Result<void> mergeFolder(const std::vector<StoredPackage>& set, const std::string& rel,
                         const std::vector<std::size_t>& holders, MergedTree& tree) {
    if (holders.size() == 1) {
        tree.owned.emplace_back(rel, holders.front());
        return ok();
    }
    tree.shared.push_back(rel);
    std::map<std::string, std::vector<Holder>> children;
    for (std::size_t index : holders) HOIST_TRY(readFolder(set[index], index, rel, children));
    for (const auto& [name, held] : children) {
        auto child = rel + "/" + name;
        if (held.size() == 1) {
            tree.owned.emplace_back(child, held.front().index);
            continue;
        }
        std::vector<std::size_t> folders;
        for (const auto& h : held) {
            if (h.folder) folders.push_back(h.index);
        }
        if (folders.size() == held.size()) {
            HOIST_TRY(mergeFolder(set, child, folders, tree));
            continue;
        }
        for (std::size_t i = 1; i < held.size(); ++i) {
            if (!held[0].folder || !held[i].folder)
                tree.clashes.push_back({child, held[0].index, held[i].index});
        }
    }
    return ok();
}

}  // namespace

Result<MergedTree> mergeWellKnownFolders(const std::vector<StoredPackage>& set) {
    MergedTree tree;
    for (const auto& dir : kWellKnownDirs) {
        std::vector<std::size_t> holders;
        for (std::size_t i = 0; i < set.size(); ++i) {
            struct stat st {};
            if (::lstat((set[i].path / dir).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
                holders.push_back(i);
        }
        if (!holders.empty()) HOIST_TRY(mergeFolder(set, dir, holders, tree));
    }
    return tree;
}

}  // namespace hoist::pkgmgr
