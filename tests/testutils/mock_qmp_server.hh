// mock_qmp_server.hh - a QMP (or guest agent) peer on a real unix socket for
// tests: it replays a scripted conversation and checks every command received.
//
// Conversation files (tests/qemumonitordata/NAME.qmp) are blocks separated by
// blank lines; '#' lines are comments. Blocks alternate: the command expected
// from the client (JSON, may span lines), then what the server answers, one
// JSON message per line: replies get the command's "id" added, events are sent
// as written. Keywords in an answer block: EOF closes the connection there
// (the next connection continues the script, as a daemon re-attaching would);
// NOREPLY sends nothing. An optional first block holding a {"QMP": ...}
// greeting replaces the default one. Commands are compared without their
// "id"; a mismatch is recorded with file:line and answered with a QMP error.
//
// Instead of a script, a handler can compute the answers (agent tests,
// concurrency tests).
#pragma once

#include "qemu/qvalue.hh"
#include "util/raii.hh"

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace virtsnap::test {

class MockQmpServer {
public:
    struct Options {
        bool send_greeting = true;       // QMP greets; the guest agent does not
        bool auto_capabilities = true;   // answer the initial qmp_capabilities unscripted
    };
    // Answers for one command: lines to send, or the keywords "EOF"/"NOREPLY".
    // `fds` holds descriptors received with the command (SCM_RIGHTS).
    using Handler = std::function<std::vector<std::string>(const qemu::QValue &command, std::vector<UniqueFd> &fds)>;

    explicit MockQmpServer(Options options);
    MockQmpServer() : MockQmpServer(Options{}) {}
    ~MockQmpServer();
    MockQmpServer(const MockQmpServer &) = delete;
    MockQmpServer &operator=(const MockQmpServer &) = delete;

    // Loads a conversation; false (and an error) when the file is malformed.
    bool load_script(const std::string &path);
    void set_handler(Handler handler);
    // Listens and serves connections one after another on a thread.
    void start();
    const std::string &socket_path() const { return socket_path_; }

    // Stops serving and returns every problem seen: mismatched or unexpected
    // commands, script steps never reached.
    std::vector<std::string> finish();

    // Descriptors received in script mode, in order.
    std::vector<UniqueFd> take_received_fds();
    int connections() const { return connections_; }
    // Every command received (without "id"), as JSON.
    std::vector<std::string> received() const;

private:
    struct Answer {
        std::string text;  // JSON, "EOF" or "NOREPLY"
        int line = 0;
    };
    struct Step {
        qemu::QValue command;
        int line = 0;
        std::vector<Answer> answers;
    };

    void serve();
    bool serve_connection(int conn);
    bool read_command(int conn, std::string &line, std::vector<UniqueFd> &fds);
    bool send_line(int conn, const std::string &text);
    std::string with_id(const std::string &answer, const qemu::QValue *id);
    void record(std::string problem);

    Options options_;
    std::string dir_;
    std::string socket_path_;
    std::string script_name_;
    std::string greeting_;
    std::vector<Step> steps_;
    size_t next_step_ = 0;
    Handler handler_;

    UniqueFd listen_fd_;
    UniqueFd wake_read_, wake_write_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0};
    std::string inbuf_;
    std::vector<UniqueFd> pending_fds_;

    mutable std::mutex mu_;
    std::vector<std::string> problems_;
    std::vector<std::string> received_;
    std::vector<UniqueFd> received_fds_;
};

}  // namespace virtsnap::test
