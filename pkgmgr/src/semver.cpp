// Semantic versions and node-semver ranges. The meaning of every form follows node-semver's
// documentation (without its loose or includePrerelease options); what hoist refuses instead
// of reading is listed on validateRange.

#include "pkgmgr/semver.hpp"

#include <algorithm>
#include <array>

#include "core/strings.hpp"

namespace hoist::pkgmgr {

namespace {

constexpr std::size_t kMaxVersionText = 64;

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

bool allDigits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), isDigit);
}

bool isIdentifierChar(char c) {
    return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

bool isSpace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool isWild(std::string_view part) {
    return part == "x" || part == "X" || part == "*";
}

// `what` names the text being read in messages: "version '1.02.3'".
Result<std::uint64_t> parseNumber(std::string_view part, std::string_view what) {
    if (!allDigits(part)) return fail(Errc::Invalid, what, ": '", part, "' is not a number");
    if (part.size() > 1 && part[0] == '0')
        return fail(Errc::Invalid, what, ": '", part, "' has a leading zero");
    // 17 digits or more are above kMaxVersionNumber (16 digits); stop before uint64 overflows.
    std::uint64_t value = 0;
    bool too_big = part.size() > 16;
    if (!too_big)
        for (char d : part) value = value * 10 + static_cast<std::uint64_t>(d - '0');
    if (too_big || value > kMaxVersionNumber)
        return fail(Errc::Invalid, what, ": ", part, " is larger than ", kMaxVersionNumber,
                    ", the largest version number semver tools agree on");
    return value;
}

Result<std::vector<std::string>> parseIdentifiers(std::string_view text, bool pre,
                                                  std::string_view what) {
    std::vector<std::string> ids = strings::split(text, '.');
    for (const auto& id : ids) {
        if (id.empty())
            return fail(Errc::Invalid, what, ": an empty ", pre ? "pre-release" : "build",
                        " identifier");
        if (!std::all_of(id.begin(), id.end(), isIdentifierChar))
            return fail(Errc::Invalid, what, ": ", pre ? "pre-release" : "build", " identifier '",
                        id, "' may hold only 0-9, A-Z, a-z and '-'");
        if (pre && allDigits(id) && id.size() > 1 && id[0] == '0')
            return fail(Errc::Invalid, what, ": pre-release identifier '", id,
                        "' has a leading zero");
    }
    return ids;
}

// "<core>[-pre][+build]": checks the identifiers, stores the pre-release, returns the core's
// dot-separated parts (build metadata is dropped).
Result<std::vector<std::string>> splitVersion(std::string_view text, std::vector<std::string>& pre,
                                              std::string_view what) {
    if (auto plus = text.find('+'); plus != std::string_view::npos) {
        HOIST_TRY(parseIdentifiers(text.substr(plus + 1), false, what));
        text = text.substr(0, plus);
    }
    if (auto dash = text.find('-'); dash != std::string_view::npos) {
        HOIST_ASSIGN(pre, parseIdentifiers(text.substr(dash + 1), true, what));
        text = text.substr(0, dash);
    }
    return strings::split(text, '.');
}

// Numeric identifiers compare numerically (by length first, as they have no leading zeros),
// and before alphanumeric ones, which compare in ASCII order.
int compareIdentifier(std::string_view a, std::string_view b) {
    bool na = allDigits(a), nb = allDigits(b);
    if (na != nb) return na ? -1 : 1;
    if (na && a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

int comparePre(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    // A pre-release sorts before its release.
    if (a.empty() != b.empty()) return a.empty() ? 1 : -1;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
        if (int c = compareIdentifier(a[i], b[i]); c != 0) return c;
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return 0;
}

bool sameCore(const SemVer& a, const SemVer& b) {
    return a.major == b.major && a.minor == b.minor && a.patch == b.patch;
}

// A version as written in a range: up to three numbers, the rest wildcards.
struct Partial {
    std::size_t given = 0;  ///< how many of MAJOR, MINOR, PATCH are numbers
    std::array<std::uint64_t, 3> parts{};
    std::vector<std::string> pre;

    SemVer filled() const { return {parts[0], parts[1], parts[2], pre}; }
};

// Where a range error names its object: "version range '<range>': '<token>'".
std::string where(std::string_view range, std::string_view token) {
    return detail::concat("version range '", range, "': '", token, "'");
}

Result<Partial> parsePartial(std::string_view text, std::string_view token,
                             std::string_view range) {
    const std::string at = where(range, token);
    if (text.size() > kMaxVersionText)
        return fail(Errc::Invalid, at, " is longer than ", kMaxVersionText,
                    " characters, the limit for a version in a range");
    if (text.size() > 1 && text[0] == 'v') text.remove_prefix(1);
    if (text.empty() || !(isDigit(text[0]) || isWild(text.substr(0, 1))))
        return fail(Errc::Invalid, at,
                    " is not a comparator (use >=, <=, >, <, =, !=, ^ or ~ before a version)");
    Partial p;
    HOIST_ASSIGN(auto parts, splitVersion(text, p.pre, at));
    if (parts.size() > 3) return fail(Errc::Invalid, at, " has more than MAJOR.MINOR.PATCH");
    bool wild = false;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (isWild(parts[i])) {
            wild = true;
            continue;
        }
        if (wild) return fail(Errc::Invalid, at, " has a number after a wildcard");
        HOIST_ASSIGN(p.parts[i], parseNumber(parts[i], at));
        p.given = i + 1;
    }
    if (!p.pre.empty() && p.given < 3)
        return fail(Errc::Invalid, at, " has a pre-release without a full MAJOR.MINOR.PATCH");
    return p;
}

enum class Op { Eq, Ne, Lt, Le, Gt, Ge };

struct Comparator {
    Op op;
    SemVer version;

    bool operator==(const Comparator& other) const {
        return op == other.op && compare(version, other.version) == 0;
    }
};

bool holds(const Comparator& c, const SemVer& v) {
    int r = compare(v, c.version);
    switch (c.op) {
        case Op::Eq:
            return r == 0;
        case Op::Ne:
            return r != 0;
        case Op::Lt:
            return r < 0;
        case Op::Le:
            return r <= 0;
        case Op::Gt:
            return r > 0;
        case Op::Ge:
            return r >= 0;
    }
    return false;
}

std::string_view opText(Op op) {
    switch (op) {
        case Op::Eq:
            return "";
        case Op::Ne:
            return "!=";
        case Op::Lt:
            return "<";
        case Op::Le:
            return "<=";
        case Op::Gt:
            return ">";
        case Op::Ge:
            return ">=";
    }
    return "";
}

// One alternative: comparators that must all hold; empty means any version.
using ComparatorSet = std::vector<Comparator>;

// Builds the primitive comparators of one alternative.
class SetBuilder {
public:
    SetBuilder(std::string_view range, std::string_view token) : at_(where(range, token)) {}

    // ">=0.0.0" holds for every release, so it is left out (node-semver does the same).
    void lower(const SemVer& v) {
        if (v.major == 0 && v.minor == 0 && v.patch == 0 && v.pre.empty()) return;
        add(Op::Ge, v);
    }
    void add(Op op, const SemVer& v) {
        Comparator c{op, v};
        if (std::find(set_.begin(), set_.end(), c) == set_.end()) set_.push_back(std::move(c));
    }
    // The first version above every version that keeps the first `keep` numbers of `p`
    // ("1.11" kept at 2 -> 1.12.0); `pre0` adds the "-0" that excludes its pre-releases.
    Result<SemVer> next(const Partial& p, std::size_t keep, bool pre0) const {
        SemVer v;
        std::array<std::uint64_t*, 3> out{&v.major, &v.minor, &v.patch};
        for (std::size_t i = 0; i + 1 < keep; ++i) *out[i] = p.parts[i];
        std::uint64_t last = p.parts[keep - 1];
        if (last == kMaxVersionNumber)
            return fail(Errc::Invalid, at_, " has no upper bound: ", last,
                        " is the largest version number");
        *out[keep - 1] = last + 1;
        if (pre0) v.pre = {"0"};
        return v;
    }
    const std::string& at() const { return at_; }
    ComparatorSet& set() { return set_; }

private:
    std::string at_;
    ComparatorSet set_;
};

Result<void> addCaret(SetBuilder& b, const Partial& p) {
    if (p.given == 0) return ok();
    b.lower(p.filled());
    // The leftmost non-zero number may not change (0.0.x: the patch, with all three given).
    std::size_t keep = 1;
    if (p.parts[0] == 0 && p.given >= 2) keep = (p.given == 3 && p.parts[1] == 0) ? 3 : 2;
    HOIST_ASSIGN(auto upper, b.next(p, keep, true));
    b.add(Op::Lt, upper);
    return ok();
}

Result<void> addTilde(SetBuilder& b, const Partial& p) {
    if (p.given == 0) return ok();
    b.lower(p.filled());
    HOIST_ASSIGN(auto upper, b.next(p, p.given == 1 ? 1 : 2, true));
    b.add(Op::Lt, upper);
    return ok();
}

Result<void> addPrimitive(SetBuilder& b, std::string_view op, const Partial& p) {
    if (op == "!=") {
        if (p.given < 3)
            return fail(Errc::Invalid, b.at(),
                        ": != needs a full version (MAJOR.MINOR.PATCH), it cannot exclude a span");
        b.add(Op::Ne, p.filled());
        return ok();
    }
    if (p.given == 3) {
        Op o = op == ">="   ? Op::Ge
               : op == "<=" ? Op::Le
               : op == ">"  ? Op::Gt
               : op == "<"  ? Op::Lt
                            : Op::Eq;
        if (o == Op::Ge)
            b.lower(p.filled());
        else
            b.add(o, p.filled());
        return ok();
    }
    if (p.given == 0) {
        if (op == ">" || op == "<") return fail(Errc::Invalid, b.at(), " matches nothing");
        return ok();
    }
    // A partial version is the span of versions it names: "1.11" is [1.11.0, 1.12.0-0).
    if (op == ">") {
        HOIST_ASSIGN(auto above, b.next(p, p.given, false));
        b.lower(above);
    } else if (op == ">=") {
        b.lower(p.filled());
    } else if (op == "<") {
        SemVer below = p.filled();
        below.pre = {"0"};
        b.add(Op::Lt, below);
    } else {
        HOIST_ASSIGN(auto upper, b.next(p, p.given, true));
        if (op != "<=") b.lower(p.filled());
        b.add(Op::Lt, upper);
    }
    return ok();
}

// "A - B": A's span and up to B's span, each side optional when a wildcard.
Result<ComparatorSet> parseHyphen(std::string_view from, std::string_view to,
                                  std::string_view alternative, std::string_view range) {
    HOIST_ASSIGN(auto a, parsePartial(from, from, range));
    HOIST_ASSIGN(auto z, parsePartial(to, to, range));
    SetBuilder b(range, alternative);
    if (a.given > 0) b.lower(a.filled());
    if (z.given == 3) {
        b.add(Op::Le, z.filled());
    } else if (z.given > 0) {
        HOIST_ASSIGN(auto upper, b.next(z, z.given, true));
        b.add(Op::Lt, upper);
    }
    return std::move(b.set());
}

Result<ComparatorSet> parseComparator(SetBuilder& b, std::string_view token,
                                      std::string_view range) {
    std::string_view op;
    for (std::string_view candidate : {">=", "<=", "==", "!=", "~>", ">", "<", "=", "^", "~"}) {
        if (token.starts_with(candidate)) {
            op = candidate;
            break;
        }
    }
    if (op == "~>")
        return fail(Errc::Invalid, b.at(),
                    ": '~>' means different things to npm and Ruby; write ~ (same MINOR) or ^ "
                    "(same MAJOR)");
    HOIST_ASSIGN(auto p, parsePartial(token.substr(op.size()), token, range));
    if (op == "^") {
        HOIST_TRY(addCaret(b, p));
    } else if (op == "~") {
        HOIST_TRY(addTilde(b, p));
    } else {
        HOIST_TRY(addPrimitive(b, op == "==" ? std::string_view("=") : op, p));
    }
    return b.set();
}

Result<ComparatorSet> parseAlternative(std::string_view alternative, std::string_view range) {
    std::vector<std::string> words;
    for (std::size_t i = 0; i < alternative.size();) {
        while (i < alternative.size() && isSpace(alternative[i])) ++i;
        std::size_t start = i;
        while (i < alternative.size() && !isSpace(alternative[i])) ++i;
        if (i > start) words.emplace_back(alternative.substr(start, i - start));
    }
    if (std::find(words.begin(), words.end(), "-") != words.end()) {
        if (words.size() != 3 || words[1] != "-")
            return fail(Errc::Invalid, "version range '", range, "': '", alternative,
                        "': a hyphen range is 'A - B' alone between '||'");
        return parseHyphen(words[0], words[2], alternative, range);
    }
    // An operator written apart from its version (">= 1.0", "^ 1") belongs to it.
    std::vector<std::string> tokens;
    std::string pending;
    for (const auto& word : words) {
        bool only_op = std::all_of(word.begin(), word.end(), [](char c) {
            return c == '<' || c == '>' || c == '=' || c == '!' || c == '^' || c == '~';
        });
        pending += word;
        if (only_op) continue;
        tokens.push_back(std::move(pending));
        pending.clear();
    }
    if (!pending.empty())
        return fail(Errc::Invalid, where(range, pending), " is not followed by a version");
    ComparatorSet set;
    for (const auto& token : tokens) {
        SetBuilder b(range, token);
        HOIST_ASSIGN(auto part, parseComparator(b, token, range));
        for (auto& c : part)
            if (std::find(set.begin(), set.end(), c) == set.end()) set.push_back(std::move(c));
    }
    return set;
}

Result<std::vector<ComparatorSet>> parseRange(std::string_view range) {
    if (strings::trim(range).empty())
        return fail(Errc::Invalid, "version range '", range,
                    "' is empty (write * for any version)");
    std::vector<ComparatorSet> alternatives;
    std::string_view rest = range;
    while (true) {
        auto bar = rest.find("||");
        std::string_view alternative = strings::trim(rest.substr(0, bar));
        if (alternative.empty())
            return fail(Errc::Invalid, "version range '", range, "': an alternative is empty");
        HOIST_ASSIGN(auto set, parseAlternative(alternative, range));
        alternatives.push_back(std::move(set));
        if (bar == std::string_view::npos) break;
        rest = rest.substr(bar + 2);
    }
    return alternatives;
}

bool inSet(const ComparatorSet& set, const SemVer& v) {
    if (!std::all_of(set.begin(), set.end(), [&](const Comparator& c) { return holds(c, v); }))
        return false;
    // A pre-release only satisfies an alternative that names a pre-release of the same
    // MAJOR.MINOR.PATCH: ">=1.0.0" does not take "2.0.0-rc1".
    if (v.pre.empty()) return true;
    return std::any_of(set.begin(), set.end(), [&](const Comparator& c) {
        return !c.version.pre.empty() && sameCore(c.version, v);
    });
}

// Any version string, for ordering what a repository holds.
struct LooseVersion {
    std::vector<std::string> core;
    std::vector<std::string> pre;
};

LooseVersion parseLoose(std::string_view text) {
    LooseVersion v;
    if (text.size() > 1 && (text[0] == 'v' || text[0] == 'V') && isDigit(text[1]))
        text.remove_prefix(1);
    if (auto plus = text.find('+'); plus != std::string_view::npos) text = text.substr(0, plus);
    std::string_view core = text, pre;
    if (auto dash = text.find_first_of("-~"); dash != std::string_view::npos) {
        core = text.substr(0, dash);
        pre = text.substr(dash + 1);
    }
    v.core = strings::split(core, '.');
    if (!pre.empty()) v.pre = strings::split(pre, '.');
    return v;
}

std::string_view stripZeros(std::string_view s) {
    while (s.size() > 1 && s[0] == '0' && allDigits(s)) s.remove_prefix(1);
    return s;
}

}  // namespace

Result<SemVer> SemVer::parse(std::string_view text) {
    const std::string what = detail::concat("version '", text, "'");
    std::string_view rest = text;
    if (rest.size() > 1 && rest[0] == 'v') rest.remove_prefix(1);
    SemVer v;
    HOIST_ASSIGN(auto parts, splitVersion(rest, v.pre, what));
    if (parts.size() != 3)
        return fail(Errc::Invalid, what, " is not MAJOR.MINOR.PATCH[-pre][+build]");
    HOIST_ASSIGN(v.major, parseNumber(parts[0], what));
    HOIST_ASSIGN(v.minor, parseNumber(parts[1], what));
    HOIST_ASSIGN(v.patch, parseNumber(parts[2], what));
    return v;
}

std::string SemVer::str() const {
    std::string s =
        std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    if (!pre.empty()) s += "-" + strings::join(pre, ".");
    return s;
}

int compare(const SemVer& a, const SemVer& b) {
    for (auto [x, y] :
         {std::pair{a.major, b.major}, std::pair{a.minor, b.minor}, std::pair{a.patch, b.patch}})
        if (x != y) return x < y ? -1 : 1;
    return comparePre(a.pre, b.pre);
}

int compareVersions(std::string_view a, std::string_view b) {
    LooseVersion x = parseLoose(a), y = parseLoose(b);
    std::size_t n = std::max({x.core.size(), y.core.size(), std::size_t{3}});
    for (std::size_t i = 0; i < n; ++i) {
        std::string_view pa = i < x.core.size() ? stripZeros(x.core[i]) : "0";
        std::string_view pb = i < y.core.size() ? stripZeros(y.core[i]) : "0";
        if (int c = compareIdentifier(pa, pb); c != 0) return c;
    }
    std::vector<std::string> px, py;
    for (const auto& s : x.pre) px.emplace_back(stripZeros(s));
    for (const auto& s : y.pre) py.emplace_back(stripZeros(s));
    return comparePre(px, py);
}

Result<void> validateRange(std::string_view range) {
    HOIST_TRY(parseRange(range));
    return ok();
}

Result<std::string> normalizeRange(std::string_view range) {
    HOIST_ASSIGN(auto alternatives, parseRange(range));
    std::vector<std::string> out;
    for (const auto& set : alternatives) {
        if (set.empty()) return std::string("*");
        std::vector<std::string> comparators;
        for (const auto& c : set)
            comparators.push_back(std::string(opText(c.op)) + c.version.str());
        out.push_back(strings::join(comparators, " "));
    }
    return strings::join(out, "||");
}

Result<bool> versionSatisfies(std::string_view version, std::string_view range) {
    HOIST_ASSIGN(auto alternatives, parseRange(range));
    auto v = SemVer::parse(version);
    if (!v)
        return fail(Errc::Invalid, v.error().message, ", so range '", range,
                    "' cannot be checked against it (hoist orders only semantic versions)");
    return std::any_of(alternatives.begin(), alternatives.end(),
                       [&](const ComparatorSet& set) { return inSet(set, *v); });
}

}  // namespace hoist::pkgmgr
