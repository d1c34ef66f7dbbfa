#include "core/crypto.hpp"

#include <gtest/gtest.h>

#include "testing.hpp"

namespace hoist::crypto {
namespace {

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, StreamingEqualsOneShot) {
    std::string data(100000, 'x');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
    Sha256 h;
    for (size_t i = 0; i < data.size(); i += 997) h.update(std::string_view(data).substr(i, 997));
    EXPECT_EQ(h.finishHex(), sha256Hex(data));
}

TEST(Sha256, FileHashAndMissingFile) {
    testing::TempFolder tmp;
    testing::writeFile(tmp / "f", "abc");
    auto hashed = sha256File(tmp / "f");
    ASSERT_OK(hashed);
    EXPECT_EQ(*hashed, sha256Hex("abc"));
    ASSERT_ERROR(sha256File(tmp / "missing"), Errc::NotFound, "missing");
}

TEST(Sha256, HexValidation) {
    EXPECT_TRUE(isSha256Hex(sha256Hex("a")));
    EXPECT_FALSE(isSha256Hex(std::string(64, 'A')));
    EXPECT_FALSE(isSha256Hex(std::string(63, 'a')));
    EXPECT_FALSE(isSha256Hex("../../etc/passwd"));
}

TEST(Hmac, Rfc4231Case2) {
    EXPECT_EQ(toHex(hmacSha256("Jefe", "what do ya want for nothing?")),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Base64, RoundTripAndStrictness) {
    for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
        auto decoded = base64Decode(base64Encode(s));
        ASSERT_OK(decoded);
        EXPECT_EQ(*decoded, s);
    }
    EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
    ASSERT_ERROR(base64Decode("Zm9v!mFy"), Errc::Invalid, "base64");
    ASSERT_ERROR(base64Decode("Zm9"), Errc::Invalid, "multiple of 4");
}

TEST(ConstantTime, Equality) {
    EXPECT_TRUE(constantTimeEquals("token-1", "token-1"));
    EXPECT_FALSE(constantTimeEquals("token-1", "token-2"));
    EXPECT_FALSE(constantTimeEquals("token", "token-1"));
    EXPECT_FALSE(constantTimeEquals("", "x"));
}

TEST(Ed25519, SignVerifyAndTamper) {
    auto keys = ed25519Generate();
    ASSERT_OK(keys);
    auto sig = ed25519Sign(keys->private_pem, "release bytes");
    ASSERT_OK(sig);
    EXPECT_EQ(sig->size(), 64u);
    EXPECT_OK(ed25519Verify(keys->public_pem, "release bytes", *sig));
    ASSERT_ERROR(ed25519Verify(keys->public_pem, "release bytez", *sig), Errc::Corrupt,
                 "does not verify");
    auto other = ed25519Generate();
    ASSERT_OK(other);
    ASSERT_ERROR(ed25519Verify(other->public_pem, "release bytes", *sig), Errc::Corrupt,
                 "does not verify");
    ASSERT_ERROR(ed25519Verify("not a key", "x", *sig), Errc::Invalid, "Ed25519 public key");
    auto pub = ed25519PublicOf(keys->private_pem);
    ASSERT_OK(pub);
    EXPECT_EQ(*pub, keys->public_pem);
}

}  // namespace
}  // namespace hoist::crypto
