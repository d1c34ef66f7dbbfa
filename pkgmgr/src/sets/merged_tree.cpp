#include "merged_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "core/fd.hpp"

namespace hoist::pkgmgr {

namespace {

struct Holder {
    std::size_t index = 0;
    bool folder = false;
};

// The folders the set's packages live in (one store, so one folder): paths below them are
// looked up from an open descriptor, not walked from / for each of thousands of lookups.
class EntryDirs {
public:
    /// A descriptor of pkg's parent folder and pkg's path relative to it, or -1 (then the
    /// path is absolute).
    std::pair<int, std::string> at(const StoredPackage& pkg, const std::string& rel) {
        auto parent = pkg.path.parent_path().string();
        if (parent != parent_) {
            parent_ = parent;
            fd_.reset(::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        }
        if (!fd_.valid()) return {AT_FDCWD, (pkg.path / rel).string()};
        return {fd_.get(), (pkg.path.filename() / rel).string()};
    }

private:
    std::string parent_;
    UniqueFd fd_;
};

// The entries of one package's folder: name -> is a folder (symlinks are not followed).
Result<void> readFolder(const StoredPackage& pkg, std::size_t index, const std::string& rel,
                        std::map<std::string, std::vector<Holder>>& children, EntryDirs& dirs) {
    auto path = pkg.path / rel;
    auto [at, name_at] = dirs.at(pkg, rel);
    int fd = ::openat(at, name_at.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR* dir = fd < 0 ? nullptr : ::fdopendir(fd);
    if (dir == nullptr && fd >= 0) ::close(fd);
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
                         const std::vector<std::size_t>& holders, MergedTree& tree,
                         EntryDirs& dirs) {
    if (holders.size() == 1) {
        tree.owned.emplace_back(rel, holders.front());
        return ok();
    }
    tree.shared.push_back(rel);
    std::map<std::string, std::vector<Holder>> children;
    for (std::size_t index : holders) HOIST_TRY(readFolder(set[index], index, rel, children, dirs));
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
            HOIST_TRY(mergeFolder(set, child, folders, tree, dirs));
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
    EntryDirs dirs;
    for (const auto& dir : kWellKnownDirs) {
        std::vector<std::size_t> holders;
        for (std::size_t i = 0; i < set.size(); ++i) {
            struct stat st {};
            auto [at, name_at] = dirs.at(set[i], dir);
            if (::fstatat(at, name_at.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISDIR(st.st_mode))
                holders.push_back(i);
        }
        if (!holders.empty()) HOIST_TRY(mergeFolder(set, dir, holders, tree, dirs));
    }
    return tree;
}

}  // namespace hoist::pkgmgr
