#include "core/error.hpp"

#include <array>
#include <cstring>

namespace hoist {

namespace {
struct ErrcInfo {
    Errc code;
    std::string_view name;
    int http;
    int exit;
};

// Exit codes: 1 is left for "the operation ran and said no" in CLIs that need it
// (for example a check that found problems); the rest are distinct per kind.
constexpr std::array<ErrcInfo, 12> kTable{{
    {Errc::NotFound, "not_found", 404, 3},
    {Errc::Invalid, "invalid", 400, 2},
    {Errc::Io, "io", 500, 4},
    {Errc::Network, "network", 502, 5},
    {Errc::Timeout, "timeout", 504, 6},
    {Errc::Conflict, "conflict", 409, 7},
    {Errc::Busy, "busy", 409, 8},
    {Errc::Corrupt, "corrupt", 422, 9},
    {Errc::Unhealthy, "unhealthy", 503, 10},
    {Errc::Unauthorized, "unauthorized", 401, 11},
    {Errc::Halted, "halted", 423, 12},
    {Errc::Internal, "internal", 500, 70},
}};

const ErrcInfo& info(Errc code) {
    for (const auto& entry : kTable)
        if (entry.code == code) return entry;
    return kTable.back();
}
}  // namespace

std::string Error::describe() const {
    if (sys_errno == 0) return message;
    return message + ": " + std::strerror(sys_errno);
}

Error withContext(Error error, std::string_view context) {
    error.message = std::string(context) + ": " + error.message;
    return error;
}

std::string_view errcName(Errc code) {
    return info(code).name;
}
int httpStatus(Errc code) {
    return info(code).http;
}
int exitCode(Errc code) {
    return info(code).exit;
}

Errc errcFromHttpStatus(long status) {
    switch (status) {
        case 401:
        case 403:
            return Errc::Unauthorized;
        case 404:
            return Errc::NotFound;
        case 409:
            return Errc::Conflict;
        case 422:
            return Errc::Corrupt;
        case 423:
            return Errc::Halted;
        case 429:
            return Errc::Busy;
        case 503:
            return Errc::Unhealthy;
        case 504:
            return Errc::Timeout;
        default:
            if (status >= 400 && status < 500) return Errc::Invalid;
            if (status >= 500 && status < 600) return Errc::Network;
            return Errc::Internal;
    }
}

}  // namespace hoist
