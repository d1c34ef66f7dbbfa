#include "core/files.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/process.hpp"
#include "testing.hpp"

namespace hoist::files {
namespace {

TEST(WriteFileAtomic, ReplacesContentAndLeavesNoTemporaries) {
    testing::TempFolder tmp;
    auto path = tmp / "state.json";
    ASSERT_OK(writeFileAtomic(path, "one"));
    ASSERT_OK(writeFileAtomic(path, "two", 0600));
    EXPECT_EQ(testing::readFile(path), "two");
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    int entries = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(tmp.path())) ++entries;
    EXPECT_EQ(entries, 1);
}

TEST(WriteFileAtomic, FailsInMissingFolder) {
    testing::TempFolder tmp;
    ASSERT_ERROR(writeFileAtomic(tmp / "no" / "such" / "file", "x"), Errc::Io, "cannot create");
}

TEST(ReadFile, LimitsAndMissing) {
    testing::TempFolder tmp;
    testing::writeFile(tmp / "big", std::string(1000, 'a'));
    ASSERT_ERROR(readFile(tmp / "big", 100), Errc::Invalid, "larger than 100 bytes");
    ASSERT_ERROR(readFile(tmp / "nope"), Errc::NotFound, "nope");
}

TEST(SwapSymlink, PointsAtNewTarget) {
    testing::TempFolder tmp;
    auto link = tmp / "current";
    ASSERT_OK(swapSymlink(link, "generations/1"));
    ASSERT_OK(swapSymlink(link, "generations/2"));
    EXPECT_EQ(fs::read_symlink(link), fs::path("generations/2"));
}

TEST(TempDir, RemovedUnlessKept) {
    testing::TempFolder tmp;
    fs::path kept, removed;
    {
        auto a = TempDir::create(tmp.path(), ".tmp-a-");
        ASSERT_OK(a);
        removed = a->path();
        testing::writeFile(removed / "x" / "y", "z");
        auto b = TempDir::create(tmp.path(), ".tmp-b-");
        ASSERT_OK(b);
        kept = b->path();
        b->keep();
    }
    EXPECT_FALSE(fs::exists(removed));
    EXPECT_TRUE(fs::exists(kept));
}

TEST(FileLock, SecondHolderIsBusyAcrossProcesses) {
    testing::TempFolder tmp;
    auto lock_path = tmp / "lock";
    auto held = FileLock::acquire(lock_path, std::chrono::milliseconds(0), "test");
    ASSERT_OK(held);
    // flock conflicts between open file descriptions, even in one process.
    ASSERT_ERROR(FileLock::acquire(lock_path, std::chrono::milliseconds(50), "second"), Errc::Busy,
                 "busy");
    // Another process (flock(1)) cannot take it either while we hold it.
    auto outcome = testing::run({"flock", "-n", lock_path.string(), "true"});
    EXPECT_NE(outcome.exit_code, 0);
    held = fail(Errc::Internal, "released");
    auto again = FileLock::acquire(lock_path, std::chrono::milliseconds(0), "third");
    EXPECT_OK(again);
}

}  // namespace
}  // namespace hoist::files
