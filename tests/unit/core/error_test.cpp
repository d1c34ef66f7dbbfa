#include <gtest/gtest.h>

#include "core/error.hpp"

namespace hoist {
namespace {

// Every kind a server answers with comes back as the same kind on the client, except where
// two kinds share a status (Busy and Conflict are 409, Io and Internal 500).
TEST(Error, StatusesRoundTripToTheirKind) {
    for (Errc code : {Errc::NotFound, Errc::Invalid, Errc::Network, Errc::Timeout, Errc::Conflict,
                      Errc::Corrupt, Errc::Unhealthy, Errc::Unauthorized, Errc::Halted})
        EXPECT_EQ(errcFromHttpStatus(httpStatus(code)), code) << errcName(code);
    EXPECT_EQ(errcFromHttpStatus(httpStatus(Errc::Busy)), Errc::Conflict);
    EXPECT_EQ(errcFromHttpStatus(httpStatus(Errc::Internal)), Errc::Network);
}

TEST(Error, OtherStatusesByClass) {
    EXPECT_EQ(errcFromHttpStatus(403), Errc::Unauthorized);
    EXPECT_EQ(errcFromHttpStatus(413), Errc::Invalid);
    EXPECT_EQ(errcFromHttpStatus(429), Errc::Busy);
    EXPECT_EQ(errcFromHttpStatus(418), Errc::Invalid);
    EXPECT_EQ(errcFromHttpStatus(500), Errc::Network);
    EXPECT_EQ(errcFromHttpStatus(599), Errc::Network);
    EXPECT_EQ(errcFromHttpStatus(302), Errc::Internal);
    EXPECT_EQ(errcFromHttpStatus(0), Errc::Internal);
}

}  // namespace
}  // namespace hoist
