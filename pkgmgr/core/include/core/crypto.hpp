#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace hoist::crypto {

/// Streaming SHA-256 (OpenSSL EVP). Not thread-safe; one per stream.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;

    void update(const void* data, size_t size);
    void update(std::string_view data) { update(data.data(), data.size()); }
    /// Finishes the hash; the object must not be updated afterwards.
    std::array<std::uint8_t, 32> finish();
    /// finish() as 64 lowercase hex digits.
    std::string finishHex();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256Hex(std::string_view data);
/// Hashes a file as it streams (1 MiB reads). Fails with Io or NotFound.
Result<std::string> sha256File(const std::filesystem::path& path);
/// True for exactly 64 lowercase hex digits.
bool isSha256Hex(std::string_view text);

/// Raw 32-byte HMAC-SHA256.
std::string hmacSha256(std::string_view key, std::string_view data);
std::string toHex(std::string_view bytes);

std::string base64Encode(std::string_view bytes);
/// Strict standard base64 (whitespace at the ends ignored); Invalid otherwise.
Result<std::string> base64Decode(std::string_view text);

/// Compares in time that depends only on the lengths, for tokens and MACs.
bool constantTimeEquals(std::string_view a, std::string_view b);

/// Random bytes from the OpenSSL CSPRNG as hex (2 * bytes digits).
std::string randomHex(size_t bytes);

/// A new Ed25519 key pair as PEM text (PKCS#8 private, SubjectPublicKeyInfo public).
struct KeyPair {
    std::string private_pem;
    std::string public_pem;
};
Result<KeyPair> ed25519Generate();
/// Signs message with a PEM private key; the raw 64-byte signature. Invalid for a bad key.
Result<std::string> ed25519Sign(std::string_view private_pem, std::string_view message);
/// Corrupt when the signature does not verify; Invalid when the key is not an Ed25519 PEM key.
Result<void> ed25519Verify(std::string_view public_pem, std::string_view message,
                           std::string_view signature);
/// The public PEM of a private PEM key.
Result<std::string> ed25519PublicOf(std::string_view private_pem);

}  // namespace hoist::crypto
