// The restart helper's journal (pkgmgr/journal.hpp), read by the helper and by `pkgmgr serve`.

#include "pkgmgr/journal.hpp"

#include <gtest/gtest.h>

#include "core/files.hpp"
#include "testing.hpp"

namespace hoist::pkgmgr {
namespace {

using hoist::testing::TempFolder;

TEST(Journal, EntersClosesAndLoadsBack) {
    TempFolder tmp;
    auto layout = NodeLayout::at(tmp.path());
    ASSERT_OK(layout.ensure());
    EXPECT_FALSE(Journal::load(layout)->has_value());
    EXPECT_FALSE(Journal::loadLast(layout)->has_value());

    Journal j;
    j.operation = "op-1";
    j.deployment = "d-1";
    j.from_generation = 1;
    j.to_generation = 2;
    ASSERT_OK(j.enter(layout, "stopping"));
    ASSERT_OK(j.enter(layout, "swapping", "switching"));
    auto loaded = Journal::load(layout);
    ASSERT_OK(loaded);
    ASSERT_TRUE(loaded->has_value());
    EXPECT_EQ((*loaded)->state, "swapping");
    EXPECT_EQ((*loaded)->steps.size(), 2u);
    EXPECT_EQ((*loaded)->toJson(), j.toJson());

    ASSERT_OK(j.close(layout));
    EXPECT_FALSE(fs::exists(layout.txn()));
    auto last = Journal::loadLast(layout);
    ASSERT_OK(last);
    ASSERT_TRUE(last->has_value());
    EXPECT_EQ((*last)->operation, "op-1");
    EXPECT_EQ(lastJournalPath(layout), layout.run() / "last-txn.json");
}

TEST(Journal, IgnoresNewFieldsAndNamesMissingOnes) {
    TempFolder tmp;
    auto layout = NodeLayout::at(tmp.path());
    ASSERT_OK(layout.ensure());
    ASSERT_OK(files::writeFileAtomic(
        layout.txn(), R"({"operation":"op-2","kind":"swap","from_generation":1,)"
                      R"("to_generation":2,"state":"checking","written_by":"a newer helper"})"));
    auto loaded = Journal::load(layout);
    ASSERT_OK(loaded);
    EXPECT_EQ((*loaded)->state, "checking");

    // On disk such a journal is damaged (Corrupt: recover sets it aside); fromJson, for bytes
    // that came over the wire, calls the same problem Invalid.
    ASSERT_OK(files::writeFileAtomic(layout.txn(), R"({"kind":"swap","state":"checking"})"));
    ASSERT_ERROR(Journal::load(layout), Errc::Corrupt,
                 "txn.json: fields 'operation', 'from_generation', 'to_generation' are required");
    ASSERT_ERROR(Journal::fromJson(R"({"operation":"o","kind":"swap","from_generation":"1",)"
                                   R"("to_generation":2,"state":"checking"})",
                                   "txn.json"),
                 Errc::Invalid, "txn.json: field 'from_generation' must be an integer");
    ASSERT_ERROR(Journal::fromJson(R"({"operation":"o","kind":"swap","from_generation":1,)"
                                   R"("to_generation":2,"state":"dozing"})",
                                   "txn.json"),
                 Errc::Corrupt, "txn.json: field 'state' has the unknown value 'dozing'");
}

}  // namespace
}  // namespace hoist::pkgmgr
