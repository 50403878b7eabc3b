#include "runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/cli_main.h"

namespace spt::fuzz {
namespace {

constexpr size_t kMaxCaptured = 64 << 10;
constexpr size_t kMaxMessage = 2000;  // a longer error line dumps a value it should name

void set_limit(int resource, rlim_t value) {
  const rlimit limit{value, value};
  setrlimit(resource, &limit);
}

[[noreturn]] void child_main(const std::vector<std::string>& args, const std::string& binary, const Limits& limits,
                             int err_fd) {
  set_limit(RLIMIT_AS, static_cast<rlim_t>(limits.address_space));
  set_limit(RLIMIT_CORE, 0);
  set_limit(RLIMIT_FSIZE, rlim_t{1} << 30);
  const int null_fd = open("/dev/null", O_RDWR);
  dup2(null_fd, 0);
  dup2(null_fd, 1);
  dup2(err_fd, 2);
  std::vector<std::string> all = {binary.empty() ? std::string("spt") : binary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (!binary.empty()) {
    execv(binary.c_str(), argv.data());
    std::fprintf(stderr, "fuzz: cannot exec %s: %s\n", binary.c_str(), std::strerror(errno));
    _exit(127);
  }
  const int code = spt::cli::run_main(static_cast<int>(all.size()), argv.data());
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);
}

int count_lines(const std::string& text) {
  int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  if (!text.empty() && text.back() != '\n') ++lines;
  return lines;
}

Outcome failure(std::string what) { return {Verdict::failure, std::move(what)}; }

Outcome classify_refusal(const Command& command, const RunResult& r) {
  if (r.err_bytes == 0) return failure("refusal without a message");
  if (count_lines(r.err) != 1 || r.err.rfind("spt: error: ", 0) != 0)
    return failure("refusal not one 'spt: error:' line");
  if (r.err.find("bad_alloc") != std::string::npos) return failure("std::bad_alloc (allocated a forged size)");
  if (static_cast<size_t>(r.err_bytes) > kMaxMessage) return failure("error line over 2000 bytes");
  // "weight_decay" is named as well by "weight decay" or "--weight-decay".
  const auto plain = [](std::string s) {
    std::replace(s.begin(), s.end(), '_', ' ');
    std::replace(s.begin(), s.end(), '-', ' ');
    return s;
  };
  // "beta1" also by "betas".
  const auto stem = [](std::string s) {
    while (s.size() > 3 && std::isdigit(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
  };
  bool named = command.names.empty();
  for (const std::string& name : command.names)
    named = named || plain(r.err).find(plain(name)) != std::string::npos ||
            plain(r.err).find(plain(stem(name))) != std::string::npos;
  if (!named) return failure("refusal names neither the file nor the value");
  if (command.expect == Expect::accept) return failure("valid input refused");
  return {Verdict::refused, ""};
}

}  // namespace

Child::Child(const std::vector<std::string>& args, const std::string& binary, const Limits& limits) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::fflush(stdout);
  std::fflush(stderr);
  start_ = std::chrono::steady_clock::now();
  deadline_ = start_ + std::chrono::milliseconds(static_cast<int64_t>(limits.timeout_s * 1000));
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    close(fds[0]);
    child_main(args, binary, limits, fds[1]);
  }
  close(fds[1]);
  fd_ = fds[0];
}

Child::~Child() {
  if (fd_ >= 0) close(fd_);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Child::read_some() {
  char buffer[1 << 16];
  const ssize_t got = read(fd_, buffer, sizeof buffer);
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (got <= 0) return false;
  result_.err_bytes += got;
  const size_t room = kMaxCaptured - std::min(kMaxCaptured, result_.err.size());
  result_.err.append(buffer, std::min(room, static_cast<size_t>(got)));
  return true;
}

RunResult Child::finish(bool kill_it) {
  if (kill_it) {
    kill(pid_, SIGKILL);
    result_.timed_out = true;
  }
  waitpid(pid_, &result_.status, 0);
  pid_ = -1;
  result_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return result_;
}

Outcome classify(const Command& command, const RunResult& r) {
  if (r.timed_out) return failure("hang (killed at the deadline)");
  if (WIFSIGNALED(r.status)) {
    const int sig = WTERMSIG(r.status);
    return failure(std::string("crash (") + (sig == SIGKILL ? "SIGKILL, out of memory?" : strsignal(sig)) + ")");
  }
  const int code = WEXITSTATUS(r.status);
  if (code == 0) {
    if (command.expect == Expect::refuse) return failure("silent acceptance of a corrupted input");
    return {Verdict::accepted, ""};
  }
  if (code != 1) return failure("exit code " + std::to_string(code));
  return classify_refusal(command, r);
}

std::string describe(const RunResult& r) {
  std::string status = r.timed_out             ? "killed after the deadline"
                       : WIFSIGNALED(r.status) ? "signal " + std::to_string(WTERMSIG(r.status))
                                               : "exit " + std::to_string(WEXITSTATUS(r.status));
  std::string err = r.err.substr(0, 600);
  if (r.err_bytes > static_cast<int64_t>(err.size())) err += "... (" + std::to_string(r.err_bytes) + " bytes)";
  return status + ", " + std::to_string(static_cast<int>(r.seconds * 1000)) + " ms, stderr: " + err;
}

}  // namespace spt::fuzz
