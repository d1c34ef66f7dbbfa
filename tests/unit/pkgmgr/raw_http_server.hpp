#pragma once
// A deliberately misbehaving HTTP/1.1 server on 127.0.0.1 (port 0), in a thread of the test:
// it can cut a response off halfway or ignore Range, which a well-behaved server library
// won't do. One request per connection ("Connection: close").

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hoist::testing {

class RawHttpServer {
public:
    enum class Mode {
        /// The first GET of each path sends the headers and half the body, then closes.
        DropFirstHalfway,
        /// Range is ignored: always 200 with the whole body.
        IgnoreRange,
    };

    RawHttpServer(std::map<std::string, std::string> files, Mode mode)
        : files_(std::move(files)), mode_(mode) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::listen(listen_fd_, 64);
        socklen_t len = sizeof addr;
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { loop(); });
    }
    ~RawHttpServer() {
        stop_ = true;
        thread_.join();
        ::close(listen_fd_);
    }
    RawHttpServer(const RawHttpServer&) = delete;
    RawHttpServer& operator=(const RawHttpServer&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// "GET /packages/<sha> range=<Range header or ->" for each request, in order.
    std::vector<std::string> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    void loop() {
        while (!stop_) {
            pollfd p{listen_fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            serve(fd);
            ::close(fd);
        }
    }

    static void sendAll(int fd, const std::string& data) {
        std::size_t off = 0;
        while (off < data.size()) {
            ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return;
            off += static_cast<std::size_t>(n);
        }
    }

    void serve(int fd) {
        std::string request;
        char buf[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return;
            request.append(buf, static_cast<std::size_t>(n));
        }
        auto line_end = request.find("\r\n");
        auto first = request.substr(0, line_end);
        auto sp1 = first.find(' ');
        auto sp2 = first.find(' ', sp1 + 1);
        std::string path = first.substr(sp1 + 1, sp2 - sp1 - 1);
        std::string range = "-";
        for (std::size_t pos = line_end + 2; pos < request.size();) {
            auto end = request.find("\r\n", pos);
            if (end == std::string::npos || end == pos) break;
            auto header = request.substr(pos, end - pos);
            if (header.size() > 6 &&
                (header.rfind("Range:", 0) == 0 || header.rfind("range:", 0) == 0)) {
                range = header.substr(6);
                while (!range.empty() && range.front() == ' ') range.erase(0, 1);
            }
            pos = end + 2;
        }
        bool first_for_path = false;
        {
            std::lock_guard lock(mutex_);
            requests_.push_back("GET " + path + " range=" + range);
            first_for_path = seen_[path]++ == 0;
        }
        auto it = files_.find(path);
        if (it == files_.end()) {
            sendAll(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        const std::string& body = it->second;
        std::size_t from = 0;
        if (range.rfind("bytes=", 0) == 0 && mode_ != Mode::IgnoreRange) {
            from = std::stoul(range.substr(6));
        }
        if (from >= body.size() && from > 0) {
            sendAll(fd, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" +
                            std::to_string(body.size()) +
                            "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        std::string head;
        if (from > 0) {
            head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(from) +
                   "-" + std::to_string(body.size() - 1) + "/" + std::to_string(body.size()) +
                   "\r\n";
        } else {
            head = "HTTP/1.1 200 OK\r\n";
        }
        head += "Content-Length: " + std::to_string(body.size() - from) +
                "\r\nConnection: close\r\n\r\n";
        sendAll(fd, head);
        if (mode_ == Mode::DropFirstHalfway && first_for_path) {
            sendAll(fd, body.substr(from, (body.size() - from) / 2));
            ::shutdown(fd, SHUT_RDWR);
            return;
        }
        sendAll(fd, body.substr(from));
    }

    std::map<std::string, std::string> files_;
    Mode mode_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mutex_;
    std::vector<std::string> requests_;
    std::map<std::string, int> seen_;
};

}  // namespace hoist::testing
