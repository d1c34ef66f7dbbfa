#include "core/crypto.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <cstdio>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "core/deleter.hpp"
#include "core/strings.hpp"

namespace hoist::crypto {

namespace {
using MdCtxPtr = Handle<EVP_MD_CTX, EVP_MD_CTX_free>;
using PkeyPtr = Handle<EVP_PKEY, EVP_PKEY_free>;
using PkeyCtxPtr = Handle<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using BioPtr = Handle<BIO, BIO_free>;

constexpr char kHex[] = "0123456789abcdef";

BioPtr memBio(std::string_view text) {
    return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string bioText(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(len));
}

Result<PkeyPtr> loadPrivate(std::string_view pem) {
    auto bio = memBio(pem);
    PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519)
        return fail(Errc::Invalid, "not an Ed25519 private key in PEM format");
    return key;
}

Result<PkeyPtr> loadPublic(std::string_view pem) {
    auto bio = memBio(pem);
    PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519)
        return fail(Errc::Invalid, "not an Ed25519 public key in PEM format");
    return key;
}

Result<std::string> publicPem(EVP_PKEY* key) {
    BioPtr out(BIO_new(BIO_s_mem()));
    if (PEM_write_bio_PUBKEY(out.get(), key) != 1)
        return fail(Errc::Internal, "cannot write the public key");
    return bioText(out.get());
}
}  // namespace

struct Sha256::Impl {
    MdCtxPtr ctx{EVP_MD_CTX_new()};
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
    EVP_DigestInit_ex(impl_->ctx.get(), EVP_sha256(), nullptr);
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
    EVP_DigestUpdate(impl_->ctx.get(), data, size);
}

std::array<std::uint8_t, 32> Sha256::finish() {
    std::array<std::uint8_t, 32> out{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(impl_->ctx.get(), out.data(), &len);
    return out;
}

std::string Sha256::finishHex() {
    auto digest = finish();
    return toHex(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string sha256Hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.finishHex();
}

Result<std::string> sha256File(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return failErrno(err == ENOENT ? Errc::NotFound : Errc::Io, err, "cannot open '",
                         path.string(), "'");
    }
    Sha256 h;
    std::string buffer(1 << 20, '\0');
    while (true) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(fd);
            return failErrno(Errc::Io, err, "cannot read '", path.string(), "'");
        }
        if (n == 0) break;
        h.update(buffer.data(), static_cast<size_t>(n));
    }
    ::close(fd);
    return h.finishHex();
}

bool isSha256Hex(std::string_view text) {
    if (text.size() != 64) return false;
    for (char c : text)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string hmacSha256(std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
}

std::string toHex(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
    return out;
}

std::string base64Encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

Result<std::string> base64Decode(std::string_view text) {
    text = strings::trim(text);
    if (text.size() % 4 != 0)
        return fail(Errc::Invalid, "invalid base64: length is not a multiple of 4");
    for (char c : text) {
        bool valid = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/' || c == '=';
        if (!valid) return fail(Errc::Invalid, "invalid base64: unexpected character");
    }
    std::string out(3 * text.size() / 4 + 1, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) return fail(Errc::Invalid, "invalid base64");
    size_t len = static_cast<size_t>(n);
    // EVP_DecodeBlock counts padding as zero bytes; take them off.
    if (!text.empty() && text.back() == '=') --len;
    if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
    out.resize(len);
    return out;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
    // Hash both first so that the comparison itself does not depend on the expected length.
    auto ha = sha256Hex(a);
    auto hb = sha256Hex(b);
    return CRYPTO_memcmp(ha.data(), hb.data(), ha.size()) == 0 && a.size() == b.size();
}

std::string randomHex(size_t bytes) {
    std::string raw(bytes, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
    return toHex(raw);
}

Result<KeyPair> ed25519Generate() {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
        return fail(Errc::Internal, "cannot generate an Ed25519 key");
    PkeyPtr key(raw);
    BioPtr priv(BIO_new(BIO_s_mem()));
    if (PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return fail(Errc::Internal, "cannot write the private key");
    HOIST_ASSIGN(auto pub, publicPem(key.get()));
    return KeyPair{bioText(priv.get()), std::move(pub)};
}

Result<std::string> ed25519Sign(std::string_view private_pem, std::string_view message) {
    HOIST_ASSIGN(auto key, loadPrivate(private_pem));
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1)
        return fail(Errc::Internal, "cannot start an Ed25519 signature");
    std::string sig(64, '\0');
    size_t len = sig.size();
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
        return fail(Errc::Internal, "cannot sign with Ed25519");
    sig.resize(len);
    return sig;
}

Result<void> ed25519Verify(std::string_view public_pem, std::string_view message,
                           std::string_view signature) {
    HOIST_ASSIGN(auto key, loadPublic(public_pem));
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1)
        return fail(Errc::Internal, "cannot start an Ed25519 verification");
    int rc = EVP_DigestVerify(
        ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
        reinterpret_cast<const unsigned char*>(message.data()), message.size());
    if (rc != 1) return fail(Errc::Corrupt, "the Ed25519 signature does not verify");
    return ok();
}

Result<std::string> ed25519PublicOf(std::string_view private_pem) {
    HOIST_ASSIGN(auto key, loadPrivate(private_pem));
    return publicPem(key.get());
}

}  // namespace hoist::crypto
