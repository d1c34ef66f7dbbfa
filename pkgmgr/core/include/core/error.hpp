#pragma once

#include <expected>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace hoist {

/// The kinds of failure every component agrees on. One table maps them to HTTP
/// statuses (httpStatus), one to process exit codes (exitCode).
enum class Errc {
    NotFound,
    Invalid,
    Io,
    Network,
    Timeout,
    Conflict,
    Busy,
    Corrupt,
    Unhealthy,
    Unauthorized,
    Halted,
    Internal,
};

/// A failure: a code, a message that names the object and the rule (lowercase, no
/// trailing period), and the errno when a system call failed.
struct Error {
    Errc code = Errc::Internal;
    std::string message;
    int sys_errno = 0;

    /// The message, followed by strerror(sys_errno) when set.
    std::string describe() const;
};

template <class T>
using Result = std::expected<T, Error>;

/// Success of a Result<void>.
inline Result<void> ok() {
    return {};
}

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
    std::ostringstream out;
    (out << ... << std::forward<Parts>(parts));
    return out.str();
}
}  // namespace detail

/// Builds an unexpected Error from message parts: fail(Errc::Invalid, "package '", id, "' ...").
template <class... Parts>
std::unexpected<Error> fail(Errc code, Parts&&... parts) {
    return std::unexpected(Error{code, detail::concat(std::forward<Parts>(parts)...), 0});
}

/// Like fail, recording errno (captured by the caller right after the failed call).
template <class... Parts>
std::unexpected<Error> failErrno(Errc code, int err, Parts&&... parts) {
    return std::unexpected(Error{code, detail::concat(std::forward<Parts>(parts)...), err});
}

/// Prefixes the message of an error with context: "staging generation 5: <message>".
Error withContext(Error error, std::string_view context);

std::string_view errcName(Errc code);
int httpStatus(Errc code);
int exitCode(Errc code);
/// What an error status from one of our servers stands for (the inverse of httpStatus where
/// that is one-to-one): 401 and 403 Unauthorized, 404 NotFound, 409 Conflict, 422 Corrupt,
/// 423 Halted, 429 Busy, 503 Unhealthy, 504 Timeout; any other 4xx is Invalid (the request was bad)
/// and any other 5xx Network (the server failed; the same request may succeed later).
Errc errcFromHttpStatus(long status);

}  // namespace hoist

/// Propagates the error of a Result expression, or evaluates to nothing.
#define HOIST_TRY(expr)                                                   \
    do {                                                                  \
        if (auto hoist_try_result_ = (expr); !hoist_try_result_)          \
            return std::unexpected(std::move(hoist_try_result_.error())); \
    } while (0)

#define HOIST_CONCAT_INNER_(a, b) a##b
#define HOIST_CONCAT_(a, b) HOIST_CONCAT_INNER_(a, b)
/// Declares `decl` from the value of a Result expression, or propagates its error:
/// HOIST_ASSIGN(auto info, PkgInfo::parse(text));
#define HOIST_ASSIGN(decl, expr) \
    HOIST_ASSIGN_IMPL_(decl, expr, HOIST_CONCAT_(hoist_assign_, __LINE__))
#define HOIST_ASSIGN_IMPL_(decl, expr, tmp)                   \
    auto tmp = (expr);                                        \
    if (!tmp) return std::unexpected(std::move(tmp.error())); \
    decl = std::move(*tmp)
