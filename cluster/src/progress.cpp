#include "progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "core/strings.hpp"

namespace hoist::cluster {

namespace {

/// Cuts `text` to `width` characters, marking the cut with "…" (one column). Counts bytes as
/// columns except UTF-8 continuation bytes.
std::string fit(const std::string& text, int width) {
    if (width <= 0) return "";
    int columns = 0;
    size_t i = 0;
    for (; i < text.size(); ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
        if (++columns > width) break;
    }
    if (i >= text.size()) return text;
    // One column for the ellipsis: back off to the start of the last character kept.
    size_t cut = i;
    do {
        --cut;
    } while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80);
    return text.substr(0, cut) + "\xE2\x80\xA6";
}

std::string bar(std::int64_t finished, std::int64_t of, int cells, bool complete) {
    int filled = of > 0 ? static_cast<int>(finished * cells / of) : (complete ? cells : 0);
    if (!complete) filled = std::min(filled, cells - 1);
    filled = std::max(filled, 0);
    return "[" + std::string(static_cast<size_t>(filled), '#') +
           std::string(static_cast<size_t>(cells - filled), '-') + "]";
}

/// done/changing, then the other counts that are not zero.
std::string counts(const Counts& c, bool with_done) {
    std::int64_t changing = c.total - c.skipped;
    std::vector<std::string> parts;
    if (with_done) parts.push_back(detail::concat(c.done, "/", changing, " done"));
    if (c.in_flight > 0) parts.push_back(detail::concat(c.in_flight, " in flight"));
    if (c.failed > 0) parts.push_back(detail::concat(c.failed, " failed"));
    if (c.reverted > 0) parts.push_back(detail::concat(c.reverted, " reverted"));
    if (c.skipped > 0) parts.push_back(detail::concat(c.skipped, " skipped"));
    return strings::join(parts, ", ");
}

/// Nodes that have finished one way or the other, of those the deployment changes.
std::int64_t finishedOf(const Counts& c) {
    return c.done + c.failed + c.reverted;
}

}  // namespace

std::vector<std::string> progressLines(const Deployment& d, int width) {
    int usable = std::max(width - 1, 20);
    bool complete = d.is(deploy_coordinator::DeploymentState::done);
    std::int64_t changing = d.counts.total - d.counts.skipped;
    std::int64_t finished = finishedOf(d.counts);
    int percent = changing > 0 ? static_cast<int>(finished * 100 / changing) : (complete ? 100 : 0);
    if (!complete) percent = std::min(percent, 99);
    std::string head = detail::concat(d.id, " ", d.version, " ", d.state, " ");
    std::string tail = detail::concat(" ", percent, "% ", counts(d.counts, true));
    int cells = std::clamp(usable - static_cast<int>(head.size() + tail.size()) - 2, 10, 40);
    std::vector<std::string> lines;
    lines.push_back(fit(head + bar(finished, changing, cells, complete) + tail, usable));
    if (d.roles.size() > 1) {
        size_t name_width = 0;
        for (const auto& [role, c] : d.roles) name_width = std::max(name_width, role.size());
        for (const auto& [role, c] : d.roles) {
            std::string name = role + std::string(name_width - role.size(), ' ');
            std::int64_t role_changing = c.total - c.skipped;
            bool role_complete = complete || (role_changing > 0 && c.done == role_changing);
            std::string role_tail = " " + counts(c, true);
            int role_cells =
                std::clamp(usable - static_cast<int>(name.size() + role_tail.size()) - 5, 10, 20);
            lines.push_back(fit("  " + name + " " +
                                    bar(finishedOf(c), role_changing, role_cells, role_complete) +
                                    role_tail,
                                usable));
        }
    }
    std::string waiting = d.waiting_on.empty() ? d.message : d.waiting_on;
    lines.push_back(fit(waiting.empty() ? "" : "  " + waiting, usable));
    return lines;
}

std::string progressLine(const Deployment& d) {
    std::vector<std::string> roles;
    for (const auto& [role, c] : d.roles)
        roles.push_back(detail::concat(role, " ", c.done, "/", c.total - c.skipped));
    std::string line =
        detail::concat(d.id, " ", d.version, " ", d.state, ": ", strings::join(roles, "  "));
    std::string rest = counts(d.counts, false);
    if (!rest.empty()) line += "  (" + rest + ")";
    if (!d.waiting_on.empty()) line += "; waiting on " + d.waiting_on;
    if (!d.message.empty() && d.waiting_on.find(d.message) == std::string::npos)
        line += " (" + d.message + ")";
    return line;
}

void LiveView::draw(const std::vector<std::string>& lines) {
    std::string frame;
    // Back to the first line of the last drawing; every line but the last ends with a newline,
    // so the cursor sits on the last one.
    if (drawn_ > 1) frame += "\x1b[" + std::to_string(drawn_ - 1) + "A";
    frame += "\r";
    size_t count = std::max(lines.size(), drawn_);
    for (size_t i = 0; i < count; ++i) {
        if (i > 0) frame += "\n";
        if (i < lines.size()) frame += lines[i];
        frame += "\x1b[K";
    }
    drawn_ = count;
    out_ << frame << std::flush;
}

void LiveView::finish() {
    if (drawn_ > 0) out_ << "\n" << std::flush;
    drawn_ = 0;
}

int terminalWidth() {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    if (const char* columns = std::getenv("COLUMNS")) {
        int n = std::atoi(columns);
        if (n > 0) return n;
    }
    return 80;
}

std::vector<std::string> failedNodeLines(const Deployment& d, int width) {
    std::vector<std::string> out;
    for (const auto& n : d.nodes) {
        if (!n.failed()) continue;
        std::string line = "  " + n.node + " (" + n.role + ") " + n.state + ": " +
                           (n.message.empty() ? "no reason recorded" : n.message);
        out.push_back(width > 0 ? fit(line, width - 1) : line);
    }
    return out;
}

}  // namespace hoist::cluster
