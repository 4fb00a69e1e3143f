#include "media/rtp/relay.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "node/core/log.h"

namespace pbx::media {
namespace {

constexpr int kBatch = 32;           // packets per recvmmsg/sendmmsg
constexpr size_t kMaxPacket = 2048;  // larger datagrams are dropped (MSG_TRUNC)

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// A UDP address, compared and copied as bytes on the packet path.
struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;

  bool Same(const sockaddr_storage& other, socklen_t other_len) const {
    if (other_len != len || other.ss_family != ss.ss_family) return false;
    if (ss.ss_family == AF_INET) {
      auto& a = reinterpret_cast<const sockaddr_in&>(ss);
      auto& b = reinterpret_cast<const sockaddr_in&>(other);
      return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
    }
    auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    auto& b = reinterpret_cast<const sockaddr_in6&>(other);
    return a.sin6_port == b.sin6_port && memcmp(&a.sin6_addr, &b.sin6_addr, 16) == 0;
  }
};

// `ip`:`port` as a socket address of `family`, or nullopt.
std::optional<Addr> MakeAddr(int family, std::string_view ip, uint16_t port) {
  Addr a;
  std::string s(ip);
  if (family == AF_INET) {
    auto& sin = reinterpret_cast<sockaddr_in&>(a.ss);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    if (inet_pton(AF_INET, s.c_str(), &sin.sin_addr) != 1) return std::nullopt;
    a.len = sizeof(sin);
  } else {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(a.ss);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    if (inet_pton(AF_INET6, s.c_str(), &sin6.sin6_addr) != 1) return std::nullopt;
    a.len = sizeof(sin6);
  }
  return a;
}

bool IsUnspecified(const Addr& a) {
  if (a.ss.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(a.ss).sin_addr.s_addr == htonl(INADDR_ANY);
  }
  return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6&>(a.ss).sin6_addr);
}

// Where one socket's packets come from and where the other side's go to.
struct Peer {
  Addr expected;  // from the SDP
  Addr latched;   // the first source seen
  bool has_expected = false;
  bool is_latched = false;
  const Addr* destination() const {
    if (is_latched) return &latched;
    return has_expected ? &expected : nullptr;
  }
};

struct Call;

// What epoll reports: one of a call's four sockets.
struct SocketRef {
  Call* call = nullptr;
  uint8_t side = 0;
  bool rtcp = false;
};

// One side of a call. Sockets and peers belong to the worker once the call is handed
// over; the counters are written by the worker alone and read by anyone.
struct Leg {
  int fd[2] = {-1, -1};  // RTP, RTCP
  uint16_t port = 0;
  Peer peer[2];  // RTP, RTCP
  std::atomic<uint64_t> packets{0}, bytes{0}, dropped{0};
  std::atomic<int64_t> last_ns{0};
};

struct Call {
  RelayId id;
  Leg legs[2];
  SocketRef refs[4];
  class Worker* worker = nullptr;
};

void CloseLeg(Leg& leg) {
  for (int& fd : leg.fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

// A single-writer counter: the worker owns it, so a relaxed load + store is enough and
// costs no locked instruction on the packet path.
void Add(std::atomic<uint64_t>& c, uint64_t n) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// One media thread: an epoll over the sockets of its calls and an eventfd mailbox.
class Worker {
 public:
  Worker() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    PBX_CHECK(epfd_ >= 0 && evfd_ >= 0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the mailbox
    PBX_CHECK(epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) == 0);
    for (int i = 0; i < kBatch; ++i) {
      iov_[i] = {bufs_[i].data(), kMaxPacket};
      in_[i].msg_hdr.msg_iov = &iov_[i];
      in_[i].msg_hdr.msg_iovlen = 1;
    }
    thread_ = std::thread([this] { Run(); });
  }

  ~Worker() {
    Post([this] { stop_ = true; });
    thread_.join();
    close(epfd_);
    close(evfd_);
  }

  // Runs `fn` on the worker thread, after everything posted before it.
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      inbox_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    PBX_CHECK(write(evfd_, &one, sizeof(one)) == sizeof(one));
  }

  // Runs `fn` on the worker thread and waits for it.
  void PostAndWait(std::function<void()> fn) {
    std::promise<void> done;
    Post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void AddCall(struct Call* c) {
    for (SocketRef& r : c->refs) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = &r;
      PBX_CHECK(epoll_ctl(epfd_, EPOLL_CTL_ADD, c->legs[r.side].fd[r.rtcp], &ev) == 0);
    }
  }

  void RemoveCall(struct Call* c) {
    for (Leg& leg : c->legs) {
      for (int fd : leg.fd) epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
      CloseLeg(leg);
    }
    // Events for these sockets may sit later in this round's epoll array, and the call is
    // freed once the control thread hears back: remember the refs, never dereference them.
    for (SocketRef& r : c->refs) removed_.push_back(&r);
  }

  uint64_t packets() const { return packets_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  int64_t last_ns() const { return last_ns_.load(std::memory_order_relaxed); }

 private:
  void Run() {
    try {
      std::array<epoll_event, 64> events;
      while (!stop_) {
        int n = epoll_wait(epfd_, events.data(), events.size(), -1);
        if (n < 0) {
          PBX_CHECK(errno == EINTR);
          continue;
        }
        removed_.clear();
        for (int i = 0; i < n; ++i) {
          auto* ref = static_cast<SocketRef*>(events[i].data.ptr);
          if (ref == nullptr) {
            DrainMailbox();
          } else if (std::find(removed_.begin(), removed_.end(), ref) == removed_.end()) {
            Relay(*ref);
          }
        }
      }
    } catch (const std::exception& e) {
      PBX_LOG(kError, "rtp", "media worker died: {}", e.what());
      abort();
    } catch (...) {
      PBX_LOG(kError, "rtp", "media worker died of an unknown exception");
      abort();
    }
  }

  void DrainMailbox() {
    uint64_t count;
    while (read(evfd_, &count, sizeof(count)) == sizeof(count)) {
    }
    std::deque<std::function<void()>> work;
    {
      std::lock_guard<std::mutex> lock(mu_);
      work.swap(inbox_);
    }
    for (auto& fn : work) fn();
  }

  // Moves what waits on one socket to the other side's matching socket.
  void Relay(const SocketRef& ref) {
    Leg& in = ref.call->legs[ref.side];
    Leg& out = ref.call->legs[1 - ref.side];
    Peer& src = in.peer[ref.rtcp];
    const int in_fd = in.fd[ref.rtcp], out_fd = out.fd[ref.rtcp];
    for (;;) {
      for (int i = 0; i < kBatch; ++i) {
        in_[i].msg_hdr.msg_name = &from_[i];
        in_[i].msg_hdr.msg_namelen = sizeof(from_[i]);
        in_[i].msg_hdr.msg_flags = 0;
      }
      int n = recvmmsg(in_fd, in_.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;  // EAGAIN; a transient error (ICMP unreachable) waits for more
      const Addr* dst = out.peer[ref.rtcp].destination();
      int m = 0;
      uint64_t relayed_bytes = 0, dropped = 0;
      for (int i = 0; i < n; ++i) {
        const msghdr& h = in_[i].msg_hdr;
        if (h.msg_flags & MSG_TRUNC) {
          ++dropped;
          continue;
        }
        if (!src.is_latched) {
          memcpy(&src.latched.ss, &from_[i], h.msg_namelen);
          src.latched.len = h.msg_namelen;
          src.is_latched = true;
        } else if (!src.latched.Same(from_[i], h.msg_namelen)) {
          ++dropped;  // an intruder, or the phone's old address
          continue;
        }
        if (dst == nullptr) {
          ++dropped;
          continue;
        }
        out_iov_[m] = {bufs_[i].data(), in_[i].msg_len};
        out_[m].msg_hdr = {};
        out_[m].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&dst->ss);
        out_[m].msg_hdr.msg_namelen = dst->len;
        out_[m].msg_hdr.msg_iov = &out_iov_[m];
        out_[m].msg_hdr.msg_iovlen = 1;
        relayed_bytes += in_[i].msg_len;
        ++m;
      }
      int sent = 0;
      while (sent < m) {
        int k = sendmmsg(out_fd, out_.data() + sent, m - sent, MSG_DONTWAIT);
        if (k <= 0) break;  // a full socket buffer or ICMP error: the rest is lost, as UDP is
        sent += k;
      }
      dropped += m - sent;
      if (sent < m) {
        for (int i = sent; i < m; ++i) relayed_bytes -= out_iov_[i].iov_len;
      }
      Add(in.packets, sent);
      Add(in.bytes, relayed_bytes);
      Add(in.dropped, dropped);
      if (sent > 0) {
        int64_t now = NowNs();
        in.last_ns.store(now, std::memory_order_relaxed);
        last_ns_.store(now, std::memory_order_relaxed);
      }
      Add(packets_, sent);
      Add(bytes_, relayed_bytes);
      Add(dropped_, dropped);
      if (n < kBatch) return;
    }
  }

  int epfd_ = -1;
  int evfd_ = -1;
  std::thread thread_;
  bool stop_ = false;  // worker thread only
  std::mutex mu_;
  std::deque<std::function<void()>> inbox_;  // guarded by mu_
  std::vector<const SocketRef*> removed_;    // worker thread only

  // Packet buffers, worker thread only.
  std::array<std::array<char, kMaxPacket>, kBatch> bufs_;
  std::array<iovec, kBatch> iov_;
  std::array<iovec, kBatch> out_iov_;
  std::array<mmsghdr, kBatch> in_{};
  std::array<mmsghdr, kBatch> out_{};
  std::array<sockaddr_storage, kBatch> from_;

  std::atomic<uint64_t> packets_{0}, bytes_{0}, dropped_{0};
  std::atomic<int64_t> last_ns_{0};
};

// CLOCK_MONOTONIC is steady_clock's clock on Linux; 0 means "never".
std::optional<std::chrono::steady_clock::time_point> TimePoint(int64_t ns) {
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

LegCounters ReadCounters(const Leg& leg) {
  LegCounters c;
  c.packets = leg.packets.load(std::memory_order_relaxed);
  c.bytes = leg.bytes.load(std::memory_order_relaxed);
  c.dropped = leg.dropped.load(std::memory_order_relaxed);
  c.last_packet = TimePoint(leg.last_ns.load(std::memory_order_relaxed));
  return c;
}

}  // namespace

class RtpRelay::Impl {
 public:
  Impl(const RelayConfig& config, Addr bind, uint16_t first_port, size_t pairs, int workers)
      : config_(config), bind_(bind), first_port_(first_port), used_(pairs, false) {
    for (int i = 0; i < workers; ++i) workers_.push_back(std::make_unique<Worker>());
  }

  ~Impl() {
    workers_.clear();  // joins the threads; nothing touches the calls after this
    for (auto& [id, call] : calls_) {
      for (Leg& leg : call->legs) CloseLeg(leg);
    }
  }

  Result<RelayPorts> Allocate() {
    std::lock_guard<std::mutex> lock(mu_);
    auto call = std::make_unique<Call>();
    size_t tried = 0;
    int legs = 0;
    while (legs < 2 && tried < used_.size()) {
      size_t pair = cursor_;
      cursor_ = (cursor_ + 1) % used_.size();
      ++tried;
      if (used_[pair]) continue;
      Status s = BindLeg(PortOf(pair), call->legs[legs]);
      if (s.ok()) {
        ++legs;
      } else if (s.code() != Status::Code::kUnavailable) {  // not "in use": out of fds, say
        for (Leg& leg : call->legs) Unbind(leg);
        return s;
      }
    }
    if (legs < 2) {
      for (Leg& leg : call->legs) Unbind(leg);
      return Status::Unavailable(fmt::format(
          "RTP port range {}-{} exhausted ({} relays hold {} of {} port pairs)", config_.port_min,
          config_.port_max, calls_.size(), 2 * calls_.size(), used_.size()));
    }
    return Start(std::move(call));
  }

  Result<RelayPorts> AllocateAt(uint16_t a_port, uint16_t b_port) {
    for (uint16_t p : {a_port, b_port}) {
      if (p % 2 != 0 || p < first_port_ || size_t{p} + 1 > config_.port_max) {
        return Status::InvalidArgument(
            fmt::format("RTP port {} is not an even port of the range {}-{}", p, config_.port_min,
                        config_.port_max));
      }
    }
    if (a_port == b_port) return Status::InvalidArgument("both sides on one RTP port");
    std::lock_guard<std::mutex> lock(mu_);
    auto call = std::make_unique<Call>();
    Status s = BindLeg(a_port, call->legs[0]);
    if (s.ok()) s = BindLeg(b_port, call->legs[1]);
    if (!s.ok()) {
      for (Leg& leg : call->legs) Unbind(leg);
      return s;
    }
    return Start(std::move(call));
  }

  Status SetPeer(RelayId id, Side side, std::string_view ip, uint16_t rtp_port,
                 uint16_t rtcp_port) {
    if (rtp_port == 0 || (rtcp_port == 0 && rtp_port == 65535)) {
      return Status::InvalidArgument(fmt::format("peer RTP port {} cannot be used", rtp_port));
    }
    if (rtcp_port == 0) rtcp_port = rtp_port + 1;
    auto rtp = MakeAddr(bind_.ss.ss_family, ip, rtp_port);
    auto rtcp = MakeAddr(bind_.ss.ss_family, ip, rtcp_port);
    if (!rtp || !rtcp) {
      return Status::InvalidArgument(fmt::format("peer address '{}' is not an IPv{} literal", ip,
                                                 bind_.ss.ss_family == AF_INET ? 4 : 6));
    }
    // 0.0.0.0 (an RFC 2543 hold) or ::: "send me nothing". Sending there would reach this
    // host, so the side gets nothing until it sends from somewhere and is latched.
    bool unspecified = IsUnspecified(*rtp);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return NotFound(id);
    Call* c = it->second.get();
    // Waits, so that packets the worker reads after this returns go to the new address.
    c->worker->PostAndWait([c, side, rtp = *rtp, rtcp = *rtcp, unspecified] {
      Leg& leg = c->legs[static_cast<int>(side)];
      const Addr* want[2] = {&rtp, &rtcp};
      for (int k = 0; k < 2; ++k) {
        Peer& p = leg.peer[k];
        // Never set: expected.len is 0, so this is true.
        bool moved = !p.expected.Same(want[k]->ss, want[k]->len);
        p.expected = *want[k];
        p.has_expected = !unspecified;
        if (moved) p.is_latched = false;
      }
    });
    return Status::Ok();
  }

  Status Release(RelayId id) {
    std::unique_ptr<Call> call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = calls_.find(id);
      if (it == calls_.end()) return NotFound(id);
      call = std::move(it->second);
      calls_.erase(it);
      Call* c = call.get();
      c->worker->PostAndWait([c] { c->worker->RemoveCall(c); });
      for (const Leg& leg : call->legs) used_[(leg.port - first_port_) / 2] = false;
    }
    return Status::Ok();
  }

  Result<RelayStats> Stats(RelayId id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return NotFound(id);
    return RelayStats{ReadCounters(it->second->legs[0]), ReadCounters(it->second->legs[1])};
  }

  RelayTotals Totals() const {
    RelayTotals t;
    int64_t last = 0;
    for (const auto& w : workers_) {
      t.packets += w->packets();
      t.bytes += w->bytes();
      t.dropped += w->dropped();
      last = std::max(last, w->last_ns());
    }
    t.last_packet = TimePoint(last);
    std::lock_guard<std::mutex> lock(mu_);
    t.relays = calls_.size();
    return t;
  }

 private:
  static Status NotFound(RelayId id) {
    return Status::NotFound(fmt::format("no relay {}", id.value));
  }

  uint16_t PortOf(size_t pair) const { return static_cast<uint16_t>(first_port_ + 2 * pair); }

  // Binds `port` and `port`+1 for `leg` and marks the pair used. REQUIRES: mu_ held.
  Status BindLeg(uint16_t port, Leg& leg) {
    size_t pair = (port - first_port_) / 2;
    if (used_[pair]) return Status::Unavailable(fmt::format("RTP port {} is in use", port));
    for (int k = 0; k < 2; ++k) {
      int fd = socket(bind_.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        Unbind(leg);
        return Status::Io(fmt::format("socket: {}", strerror(errno)));
      }
      leg.fd[k] = fd;
      int one = 1;
      // The VIP may not be on this node yet (standby): bind it anyway.
      setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(one));
      Addr a = bind_;
      uint16_t p = static_cast<uint16_t>(port + k);
      if (a.ss.ss_family == AF_INET) {
        reinterpret_cast<sockaddr_in&>(a.ss).sin_port = htons(p);
      } else {
        reinterpret_cast<sockaddr_in6&>(a.ss).sin6_port = htons(p);
      }
      if (bind(fd, reinterpret_cast<sockaddr*>(&a.ss), a.len) != 0) {
        int err = errno;
        Unbind(leg);
        return err == EADDRINUSE ? Status::Unavailable(fmt::format("RTP port {} is in use", p))
                                 : Status::Io(fmt::format("bind {}: {}", p, strerror(err)));
      }
    }
    leg.port = port;
    used_[pair] = true;
    return Status::Ok();
  }

  // Closes a leg that never reached a worker and frees its pair. REQUIRES: mu_ held.
  void Unbind(Leg& leg) {
    CloseLeg(leg);
    if (leg.port != 0) used_[(leg.port - first_port_) / 2] = false;
    leg.port = 0;
  }

  // Hands a bound call to a worker. REQUIRES: mu_ held.
  RelayPorts Start(std::unique_ptr<Call> call) {
    Call* c = call.get();
    c->id = RelayId{++last_id_};
    c->worker = workers_[next_worker_++ % workers_.size()].get();
    for (int i = 0; i < 4; ++i) c->refs[i] = SocketRef{c, static_cast<uint8_t>(i / 2), i % 2 == 1};
    RelayPorts ports{c->id, c->legs[0].port, c->legs[1].port};
    calls_.emplace(c->id, std::move(call));
    c->worker->Post([c] { c->worker->AddCall(c); });
    return ports;
  }

  const RelayConfig config_;
  const Addr bind_;
  const uint16_t first_port_;
  std::vector<std::unique_ptr<Worker>> workers_;

  mutable std::mutex mu_;   // the control path only; never taken by a worker
  std::vector<bool> used_;  // per even port of the range: bound by a relay
  size_t cursor_ = 0;
  uint64_t last_id_ = 0;
  size_t next_worker_ = 0;
  std::map<RelayId, std::unique_ptr<Call>> calls_;
};

Result<std::unique_ptr<RtpRelay>> RtpRelay::Create(const RelayConfig& config) {
  bool v6 = config.bind_address.find(':') != std::string::npos;
  auto bind = MakeAddr(v6 ? AF_INET6 : AF_INET, config.bind_address, 0);
  if (!bind) {
    return Status::InvalidArgument(
        fmt::format("RTP bind address '{}' is not an IP literal", config.bind_address));
  }
  uint16_t first = config.port_min + (config.port_min % 2);
  if (config.port_min == 0 || first >= config.port_max) {
    return Status::InvalidArgument(fmt::format("RTP port range {}-{} holds no RTP/RTCP pair",
                                               config.port_min, config.port_max));
  }
  size_t pairs = (size_t{config.port_max} - first + 1) / 2;
  int workers = config.workers > 0
                    ? config.workers
                    : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (config.workers < 0 || workers > 64) {
    return Status::InvalidArgument(fmt::format("{} media workers", config.workers));
  }
  return std::unique_ptr<RtpRelay>(
      new RtpRelay(std::make_unique<Impl>(config, *bind, first, pairs, workers)));
}

RtpRelay::RtpRelay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RtpRelay::~RtpRelay() = default;

Result<RelayPorts> RtpRelay::Allocate() { return impl_->Allocate(); }
Result<RelayPorts> RtpRelay::AllocateAt(uint16_t a_port, uint16_t b_port) {
  return impl_->AllocateAt(a_port, b_port);
}
Status RtpRelay::SetPeer(RelayId id, Side side, std::string_view ip, uint16_t rtp_port,
                         uint16_t rtcp_port) {
  return impl_->SetPeer(id, side, ip, rtp_port, rtcp_port);
}
Status RtpRelay::Release(RelayId id) { return impl_->Release(id); }
Result<RelayStats> RtpRelay::Stats(RelayId id) const { return impl_->Stats(id); }
RelayTotals RtpRelay::Totals() const { return impl_->Totals(); }

}  // namespace pbx::media
