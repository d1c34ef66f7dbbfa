#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "cluster/api_types.hpp"

namespace hoist::cluster {

/// The lines that show a deployment's progress on a terminal `width` columns wide: a header
/// (id, version, state, bar, counts), one line per role when there are several, and what it
/// waits on. No line is wider than width - 1, so none wraps. The bar counts finished nodes out
/// of those the deployment changes (skipped nodes are counted apart), and is never full unless
/// the deployment ended done.
std::vector<std::string> progressLines(const Deployment& d, int width);

/// One plain line for logs and pipes: every count, untruncated.
std::string progressLine(const Deployment& d);

/// Draws progress on a terminal, redrawing its lines in place (cursor up, erase line).
/// Not thread-safe.
class LiveView {
public:
    LiveView(std::ostream& out, int width) : out_(out), width_(width) {}
    void draw(const std::vector<std::string>& lines);
    /// Leaves the last drawing on screen; what follows starts on a new line.
    void finish();
    int width() const { return width_; }

private:
    std::ostream& out_;
    int width_;
    size_t drawn_ = 0;
};

/// The terminal's width: TIOCGWINSZ on stdout, else $COLUMNS, else 80.
int terminalWidth();

/// "agent-3: health check failed ..." for each failed node, the message cut to `width`
/// (0: no cut).
std::vector<std::string> failedNodeLines(const Deployment& d, int width);

}  // namespace hoist::cluster
