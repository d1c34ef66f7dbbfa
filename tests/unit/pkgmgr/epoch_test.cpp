// Fencing at the node (pkgmgr/epoch.hpp): the highest coordinator epoch seen is kept in
// run/epoch.json and a command under a lower one is refused, naming both epochs.

#include "pkgmgr/epoch.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

using hoist::testing::TempFolder;

TEST(Epoch, TheHighestEpochIsKeptAndALowerOneRefused) {
    TempFolder dir;
    auto layout = NodeLayout::at(dir.path());
    EXPECT_EQ(seenEpoch(layout).value_or(-1), 0);
    // No epoch: a coordinator that does not fence. Admitted, and nothing is written.
    ASSERT_OK(admitEpoch(layout, 0, "restart"));
    EXPECT_FALSE(fs::exists(layout.run() / "epoch.json"));

    ASSERT_OK(admitEpoch(layout, 5, "stage"));
    EXPECT_EQ(seenEpoch(layout).value_or(-1), 5);
    EXPECT_EQ(testing::readFile(layout.run() / "epoch.json"), "{\"epoch\":5}\n");
    ASSERT_OK(admitEpoch(layout, 5, "restart"));  // the same leader again
    ASSERT_ERROR(admitEpoch(layout, 4, "restart"), Errc::Conflict,
                 "restart refused: it carries coordinator epoch 4, but this node has already "
                 "seen epoch 5 (a newer coordinator leads)");
    EXPECT_EQ(seenEpoch(layout).value_or(-1), 5);
    ASSERT_OK(admitEpoch(layout, 0, "restart"));  // still unchecked
    ASSERT_OK(admitEpoch(layout, 9, "restart"));
    EXPECT_EQ(seenEpoch(layout).value_or(-1), 9);
    ASSERT_ERROR(admitEpoch(layout, -2, "stage"), Errc::Invalid, "epoch -2 is negative");
    // No temporary file is left beside it.
    for (const auto& entry : fs::directory_iterator(layout.run()))
        EXPECT_FALSE(entry.path().filename().string().starts_with(".tmp-")) << entry.path();
}

TEST(Epoch, ADamagedRecordRefusesEpochsButNotCommandsWithout) {
    TempFolder dir;
    auto layout = NodeLayout::at(dir.path());
    testing::writeFile(layout.run() / "epoch.json", "{\"epoch\":");
    ASSERT_ERROR(seenEpoch(layout), Errc::Corrupt, (layout.run() / "epoch.json").string());
    ASSERT_ERROR(admitEpoch(layout, 7, "restart"), Errc::Corrupt,
                 "the coordinator epoch this node has seen does not read");
    ASSERT_OK(admitEpoch(layout, 0, "restart"));
    testing::writeFile(layout.run() / "epoch.json", "{\"epoch\":-3}");
    ASSERT_ERROR(seenEpoch(layout), Errc::Corrupt, "the epoch is negative");
}

// Many senders at once (threads here; `pkgmgr serve` and the helper are processes, under the
// same flock): the record ends at the highest, and every refusal was below a recorded one.
// Node recovery leaves run/.tmp-epoch.json-* alone (it does not hold the epoch lock); the next
// write, under that lock, removes what a killed writer left.
TEST(Epoch, AKilledWritersTemporaryFileIsRemovedByTheNextWrite) {
    TempFolder dir;
    auto layout = NodeLayout::at(dir.path());
    testing::writeFile(layout.run() / ".tmp-epoch.json-0a1b2c", "{\"epoch\":");
    ASSERT_OK(admitEpoch(layout, 3, "stage"));
    EXPECT_FALSE(fs::exists(layout.run() / ".tmp-epoch.json-0a1b2c"));
    EXPECT_EQ(seenEpoch(layout).value_or(-1), 3);
}

TEST(Epoch, ConcurrentAdmissionsNeverGoBack) {
    TempFolder dir;
    auto layout = NodeLayout::at(dir.path());
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 1; i <= 40; ++i) {
                std::int64_t epoch = i * 8 - t;
                (void)admitEpoch(layout, epoch, "stage");
                auto seen = seenEpoch(layout);
                ASSERT_TRUE(seen.has_value());
                EXPECT_GE(*seen, epoch);
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(seenEpoch(layout).value_or(-1), 320);
}

}  // namespace
}  // namespace hoist::pkgmgr
