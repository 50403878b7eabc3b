#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace spt::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kMagic[8] = {'s', 'p', 't', 'r', 'd', 'z', 'v', '1'};
constexpr char kFinished = 'F';
constexpr uint64_t kMaxBlob = 1 << 20;
const char* const kTimeoutHint = "SPT_RENDEZVOUS_TIMEOUT sets the wait in seconds";

struct Hello {
  char magic[8];
  int32_t rank;
  int32_t world;
};

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left, 1 << 30)));
}

// Sends or receives all `n` bytes before the deadline; false on a closed connection, an
// error or the deadline.
bool transfer(int fd, void* data, size_t n, bool sending, Clock::time_point deadline) {
  char* at = static_cast<char*>(data);
  while (n > 0) {
    pollfd p{fd, static_cast<short>(sending ? POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return false;
    const ssize_t done = sending ? ::send(fd, at, n, MSG_NOSIGNAL) : ::recv(fd, at, n, 0);
    if (done < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (done <= 0) return false;
    at += done;
    n -= static_cast<size_t>(done);
  }
  return true;
}

// A vanished host (no FIN) is noticed by keepalive probes: idle 10 s, then 3 probes 5 s apart.
void keep_alive(int fd) {
  const int on = 1, idle = 10, interval = 5, count = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

int listen_on(int port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SPT_CHECK(fd >= 0, "rendezvous: cannot open a socket: ", std::strerror(errno));
  const int on = 1, off = 0;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_any;
  addr.sin6_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1024) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw Error(message("rendezvous: rank 0 cannot listen on port ", port, ": ", reason,
                        ": choose a free MASTER_PORT (the same on every rank)"));
  }
  return fd;
}

// One attempt; -1 with `reason` set when it fails.
int connect_once(const std::string& host, int port, std::string& reason) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int code = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (code != 0) {
    reason = ::gai_strerror(code);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      reason = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  return fd;
}

std::string missing_ranks(const std::vector<int>& peers) {
  std::string text;
  int shown = 0;
  for (size_t i = 0; i < peers.size(); ++i) {
    if (peers[i] >= 0) continue;
    if (shown++ < 8) text += (text.empty() ? "" : ", ") + std::to_string(i + 1);
  }
  return shown > 8 ? message(text, " and ", shown - 8, " more") : text;
}

}  // namespace

TcpGroup::TcpGroup(const LaunchInfo& launch)
    : rank_(launch.rank), world_(launch.world), timeout_(launch.rendezvous_timeout) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_));
  if (rank_ == 0) {
    peers_.assign(world_ - 1, -1);
    const int listener = listen_on(launch.master_port);
    int joined = 0;
    while (joined < world_ - 1) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
        ::close(listener);
        throw Error(message("rendezvous timed out after ", timeout_, " s: rank", world_ - 1 - joined > 1 ? "s " : " ",
                            missing_ranks(peers_), " of ", world_, " never connected to rank 0 on port ",
                            launch.master_port, " (were they started, with the same MASTER_ADDR and MASTER_PORT?); ",
                            kTimeoutHint));
      }
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      Hello hello{};
      const bool ok = transfer(fd, &hello, sizeof hello, false, std::min(deadline, Clock::now() + std::chrono::seconds(10)));
      if (!ok || std::memcmp(hello.magic, kMagic, sizeof kMagic) != 0) {
        ::close(fd);  // not an spt rank (a port scan, another program): ignore it
        continue;
      }
      if (hello.world != world_ || hello.rank < 1 || hello.rank >= world_ || peers_[hello.rank - 1] >= 0) {
        ::close(fd);
        ::close(listener);
        throw Error(message("rendezvous: a process announced itself as rank ", hello.rank, " of ", hello.world,
                            " but this job is ", world_, " ranks", hello.rank >= 1 && hello.rank < world_ ? " and that rank already joined" : "",
                            ": two jobs share MASTER_PORT ", launch.master_port, "? give each job its own"));
      }
      keep_alive(fd);
      peers_[hello.rank - 1] = fd;
      ++joined;
    }
    ::close(listener);
  } else {
    SPT_CHECK(!launch.master_addr.empty(), "MASTER_ADDR is not set: rank ", rank_,
              " needs the host of rank 0 to join the job (torchrun sets it; under srun export MASTER_ADDR=<first "
              "host of the allocation> and MASTER_PORT=<a free port>)");
    std::string reason = "no attempt";
    int fd = -1;
    for (int wait_ms = 50; fd < 0; wait_ms = std::min(1000, wait_ms * 2)) {
      fd = connect_once(launch.master_addr, launch.master_port, reason);
      if (fd >= 0) break;
      if (remaining_ms(deadline) == 0)
        throw Error(message("rendezvous timed out after ", timeout_, " s: rank ", rank_, " could not reach rank 0 at ",
                            launch.master_addr, ":", launch.master_port, " (", reason,
                            "); is rank 0 running, and are MASTER_ADDR and MASTER_PORT the same everywhere? ",
                            kTimeoutHint));
      ::usleep(static_cast<useconds_t>(std::min(wait_ms, remaining_ms(deadline)) * 1000));
    }
    keep_alive(fd);
    Hello hello{};
    std::memcpy(hello.magic, kMagic, sizeof kMagic);
    hello.rank = rank_;
    hello.world = world_;
    peers_.push_back(fd);
    SPT_CHECK(transfer(fd, &hello, sizeof hello, true, deadline), "rendezvous: rank ", rank_,
              " lost its connection to rank 0 at ", launch.master_addr, ":", launch.master_port, " while joining");
  }
}

TcpGroup::~TcpGroup() {
  if (watcher_.joinable()) {
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
    watcher_.join();
  }
  for (int fd : {wake_[0], wake_[1]})
    if (fd >= 0) ::close(fd);
  for (int fd : peers_)
    if (fd >= 0) ::close(fd);
}

std::string TcpGroup::broadcast(const std::string& bytes) {
  SPT_CHECK(!watcher_.joinable(), "rendezvous: broadcast after the liveness watch started");
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_));
  if (rank_ == 0) {
    uint64_t size = bytes.size();
    for (size_t i = 0; i < peers_.size(); ++i)
      SPT_CHECK(transfer(peers_[i], &size, sizeof size, true, deadline) &&
                    transfer(peers_[i], const_cast<char*>(bytes.data()), bytes.size(), true, deadline),
                "rendezvous: rank 0 lost rank ", i + 1, " while sending it the job's id (did it die?)");
    return bytes;
  }
  uint64_t size = 0;
  std::string received;
  bool ok = transfer(peers_[0], &size, sizeof size, false, deadline) && size <= kMaxBlob;
  if (ok) {
    received.resize(size);
    ok = transfer(peers_[0], received.data(), size, false, deadline);
  }
  SPT_CHECK(ok, "rendezvous: rank ", rank_, " got no id from rank 0 within ", timeout_,
            " s (it died, or waits for a rank that never came); ", kTimeoutHint);
  return received;
}

void TcpGroup::watch() {
  if (watcher_.joinable() || world_ == 1) return;
  SPT_CHECK(::pipe2(wake_, O_CLOEXEC) == 0, "rendezvous: cannot make a pipe: ", std::strerror(errno));
  watcher_ = std::thread([this] { watch_loop(); });
}

void TcpGroup::finish() {
  if (finished_.exchange(true)) return;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (int fd : peers_) {
    char done = kFinished;
    transfer(fd, &done, 1, true, deadline);
  }
  if (watcher_.joinable()) {
    (void)!::write(wake_[1], "x", 1);
    watcher_.join();
  }
}

void TcpGroup::watch_loop() {
  std::vector<bool> done(peers_.size(), false);
  size_t open = peers_.size();
  while (open > 0) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}};
    for (size_t i = 0; i < peers_.size(); ++i)
      if (!done[i]) fds.push_back({peers_[i], POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents != 0) return;
    for (size_t k = 1; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      size_t i = 0;
      while (peers_[i] != fds[k].fd) ++i;
      char byte = 0;
      const ssize_t got = ::recv(peers_[i], &byte, 1, 0);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got == 1 && byte == kFinished) {
        done[i] = true;
        --open;
        continue;
      }
      if (finished_) return;
      const int peer = rank_ == 0 ? static_cast<int>(i) + 1 : 0;
      std::fprintf(stderr,
                   "spt: error: rank %d lost rank %d: it ended without finishing (an error, a kill or a lost host; "
                   "see its own output): ending rank %d too\n",
                   rank_, peer, rank_);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
}

}  // namespace spt::dist
