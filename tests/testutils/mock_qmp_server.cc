// mock_qmp_server.cc - scripted QMP / guest-agent peer on a unix socket.

#include "mock_qmp_server.hh"

#include "tap.hh"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace virtsnap::test {

using qemu::QDict;
using qemu::QList;
using qemu::QValue;

namespace {

const char *kDefaultGreeting =
    R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "mock"}, "capabilities": ["oob"]}})";

// Sorted keys, no top-level "id": the form in which commands are compared.
QValue canonical(const QValue &v, bool top) {
    if (const QDict *d = v.dict()) {
        QDict out;
        for (const auto &[k, val] : *d)
            if (!(top && k == "id")) out.emplace_back(k, canonical(val, false));
        std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
        return QValue(std::move(out));
    }
    if (const QList *l = v.list()) {
        QList out;
        for (const auto &e : *l) out.push_back(canonical(e, false));
        return QValue(std::move(out));
    }
    return v;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return {};
    size_t e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

}  // namespace

MockQmpServer::MockQmpServer(Options options) : options_(options), greeting_(kDefaultGreeting) {
    dir_ = temp_dir("mockqmp");
    socket_path_ = dir_ + "/qmp.sock";
}

MockQmpServer::~MockQmpServer() { finish(); }

void MockQmpServer::record(std::string problem) {
    std::lock_guard lock(mu_);
    problems_.push_back(std::move(problem));
}

bool MockQmpServer::load_script(const std::string &path) {
    std::ifstream in(path);
    if (!in) {
        record("cannot open conversation " + path);
        return false;
    }
    script_name_ = path.substr(path.find_last_of('/') + 1);
    struct Block {
        std::vector<std::string> lines;
        int first_line = 0;
        std::vector<int> line_numbers;
    };
    std::vector<Block> blocks;
    std::string line;
    int lineno = 0;
    Block cur;
    while (std::getline(in, line)) {
        ++lineno;
        std::string t = trim(line);
        if (!t.empty() && t[0] == '#') continue;
        if (t.empty()) {
            if (!cur.lines.empty()) blocks.push_back(std::move(cur));
            cur = Block{};
            continue;
        }
        if (cur.lines.empty()) cur.first_line = lineno;
        cur.lines.push_back(t);
        cur.line_numbers.push_back(lineno);
    }
    if (!cur.lines.empty()) blocks.push_back(std::move(cur));

    size_t i = 0;
    if (!blocks.empty()) {
        std::string joined;
        for (const auto &l : blocks[0].lines) joined += l;
        auto v = qemu::qvalue_from_json(joined);
        if (v && v->get("QMP")) {
            greeting_ = qemu::qvalue_to_json(*v);
            i = 1;
        }
    }
    for (; i < blocks.size(); i += 2) {
        std::string joined;
        for (const auto &l : blocks[i].lines) joined += l;
        auto v = qemu::qvalue_from_json(joined);
        if (!v) {
            record(script_name_ + ":" + std::to_string(blocks[i].first_line) + ": command is not JSON");
            return false;
        }
        Step step;
        step.command = canonical(*v, true);
        step.line = blocks[i].first_line;
        if (i + 1 < blocks.size()) {
            const Block &ans = blocks[i + 1];
            for (size_t k = 0; k < ans.lines.size(); ++k) {
                const std::string &a = ans.lines[k];
                if (a != "EOF" && a != "NOREPLY" && !qemu::qvalue_from_json(a)) {
                    record(script_name_ + ":" + std::to_string(ans.line_numbers[k]) + ": answer is not JSON");
                    return false;
                }
                step.answers.push_back({a, ans.line_numbers[k]});
            }
        }
        steps_.push_back(std::move(step));
    }
    return true;
}

void MockQmpServer::set_handler(Handler handler) { handler_ = std::move(handler); }

void MockQmpServer::start() {
    listen_fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path_.c_str());
    ::unlink(socket_path_.c_str());
    if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) < 0 ||
        ::listen(listen_fd_.get(), 4) < 0) {
        record(std::string("mock cannot listen: ") + std::strerror(errno));
        return;
    }
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) {
        record("mock cannot create pipe");
        return;
    }
    wake_read_.reset(p[0]);
    wake_write_.reset(p[1]);
    thread_ = std::thread([this] { serve(); });
}

std::vector<std::string> MockQmpServer::finish() {
    if (thread_.joinable()) {
        stop_ = true;
        char c = 'x';
        if (::write(wake_write_.get(), &c, 1) < 0) {
            // the thread may be gone already; join below still works
        }
        thread_.join();
    }
    std::lock_guard lock(mu_);
    std::vector<std::string> out = problems_;
    if (!handler_ && next_step_ < steps_.size())
        out.push_back(script_name_ + ":" + std::to_string(steps_[next_step_].line) + ": " +
                      std::to_string(steps_.size() - next_step_) + " scripted command(s) never received");
    problems_.clear();
    next_step_ = steps_.size();
    return out;
}

std::vector<UniqueFd> MockQmpServer::take_received_fds() {
    std::lock_guard lock(mu_);
    return std::move(received_fds_);
}

std::vector<std::string> MockQmpServer::received() const {
    std::lock_guard lock(mu_);
    return received_;
}

void MockQmpServer::serve() {
    while (!stop_) {
        pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents) return;
        UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn.valid()) continue;
        ++connections_;
        inbuf_.clear();
        pending_fds_.clear();
        if (!serve_connection(conn.get())) return;
    }
}

bool MockQmpServer::send_line(int conn, const std::string &text) {
    std::string data = text + "\r\n";
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(conn, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        off += size_t(n);
    }
    return true;
}

// Reads one command line; false on EOF or when asked to stop.
bool MockQmpServer::read_command(int conn, std::string &line, std::vector<UniqueFd> &fds) {
    for (;;) {
        size_t nl = inbuf_.find('\n');
        if (nl != std::string::npos) {
            line = inbuf_.substr(0, nl);
            inbuf_.erase(0, nl + 1);
            // The agent protocol lets clients send 0xFF to reset the parser.
            line.erase(std::remove(line.begin(), line.end(), '\xff'), line.end());
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
            if (trim(line).empty()) continue;
            fds = std::move(pending_fds_);
            pending_fds_.clear();
            return true;
        }
        pollfd pfds[2] = {{conn, POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
        if (::poll(pfds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (pfds[1].revents) return false;
        char buf[65536];
        iovec iov{buf, sizeof(buf)};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < count; ++i) {
                    int fd;
                    std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    pending_fds_.emplace_back(fd);
                }
            }
        }
        inbuf_.append(buf, size_t(n));
    }
}

std::string MockQmpServer::with_id(const std::string &answer, const QValue *id) {
    auto v = qemu::qvalue_from_json(answer);
    if (!v || !v->dict() || !id) return answer;
    if (!v->get("return") && !v->get("error")) return answer;
    if (v->get("id")) return answer;
    QDict d = *v->dict();
    d.emplace_back("id", *id);
    return qemu::qvalue_to_json(QValue(std::move(d)));
}

// Serves one connection; false when the server must stop.
bool MockQmpServer::serve_connection(int conn) {
    if (options_.send_greeting && !send_line(conn, greeting_)) return true;
    bool negotiating = options_.auto_capabilities;
    std::string line;
    std::vector<UniqueFd> fds;
    while (read_command(conn, line, fds)) {
        auto parsed = qemu::qvalue_from_json(line);
        if (!parsed || !parsed->dict()) {
            record("client sent invalid JSON: " + line);
            continue;
        }
        const QValue *id = parsed->get("id");
        QValue got = canonical(*parsed, true);
        std::string got_text = qemu::qvalue_to_json(got);
        {
            std::lock_guard lock(mu_);
            received_.push_back(got_text);
        }
        if (negotiating) {
            negotiating = false;
            const QValue *exec = got.get("execute");
            if (exec && exec->str() && *exec->str() == "qmp_capabilities") {
                if (!send_line(conn, with_id(R"({"return": {}})", id))) return true;
                continue;
            }
            record("first command was not qmp_capabilities: " + got_text);
        }

        std::vector<std::string> answers;
        if (handler_) {
            answers = handler_(*parsed, fds);
        } else {
            std::unique_lock lock(mu_);
            if (next_step_ >= steps_.size()) {
                problems_.push_back(script_name_ + ": unexpected command after the end of the script: " + got_text);
                lock.unlock();
                answers.push_back(R"({"error": {"class": "GenericError", "desc": "mock: unexpected command"}})");
            } else {
                const Step &step = steps_[next_step_++];
                std::string want = qemu::qvalue_to_json(step.command);
                if (want != got_text) {
                    problems_.push_back(script_name_ + ":" + std::to_string(step.line) + ": expected " + want +
                                        "\n  got " + got_text);
                    answers.push_back(R"({"error": {"class": "GenericError", "desc": "mock: command mismatch"}})");
                } else {
                    for (const auto &a : step.answers) answers.push_back(a.text);
                }
                for (auto &fd : fds) received_fds_.push_back(std::move(fd));
            }
        }
        for (const auto &a : answers) {
            if (a == "NOREPLY") continue;
            if (a == "EOF") return !stop_;
            if (!send_line(conn, with_id(a, id))) return !stop_;
        }
    }
    return !stop_;
}

}  // namespace virtsnap::test
