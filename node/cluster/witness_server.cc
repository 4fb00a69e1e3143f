#include "node/cluster/witness_server.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string_view>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "node/cluster/nng_peer.h"
#include "node/core/log.h"

namespace pbx::cluster {
namespace {

using std::chrono::milliseconds;

constexpr const char* kLog = "witness";
// How often the serving thread wakes without traffic: bounds Stop() and expiry-log latency.
constexpr nng_duration kPollMs = 100;
// Room for NNG's request-id header on top of the largest acceptable witness message.
constexpr size_t kRecvMax = kMaxWitnessMessageBytes + 64;

uint64_t RandomBootId() {
  std::random_device rd;
  uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return id != 0 ? id : 1;  // 0 means "no lease" in LeaseRequest::held_boot_id
}

void LogEvent(const LeaseEvent& ev) {
  using Kind = LeaseEvent::Kind;
  switch (ev.kind) {
    case Kind::kGrant:
      PBX_LOG(kInfo, kLog, "cluster={} lease granted to {} (epoch {}, {} ms)", ev.cluster_id,
              ev.node_name, ev.epoch, ev.lease_ms);
      break;
    case Kind::kHandover:
      PBX_LOG(kInfo, kLog, "cluster={} lease handed over from {} to {} (epoch {}, {} ms)",
              ev.cluster_id, ev.previous_holder, ev.node_name, ev.epoch, ev.lease_ms);
      break;
    case Kind::kRelease:
      PBX_LOG(kInfo, kLog, "cluster={} lease released by {} (epoch {})", ev.cluster_id,
              ev.node_name, ev.epoch);
      break;
    case Kind::kExpire:
      PBX_LOG(kInfo, kLog, "cluster={} lease of {} expired (epoch {})", ev.cluster_id, ev.node_name,
              ev.epoch);
      break;
    case Kind::kRenew:
      PBX_LOG(kDebug, kLog, "cluster={} lease renewed by {} ({} ms)", ev.cluster_id, ev.node_name,
              ev.lease_ms);
      break;
    case Kind::kRefuse:
      PBX_LOG(kDebug, kLog, "cluster={} lease refused to {}: {}{}", ev.cluster_id, ev.node_name,
              ev.detail, ev.previous_holder.empty() ? "" : " (" + ev.previous_holder + ")");
      break;
    case Kind::kNone:
    case Kind::kBadRequest:  // logged with the peer address, rate-limited, by the caller
      break;
  }
}

}  // namespace

struct WitnessServer::Impl {
  explicit Impl(Options opts) : options(std::move(opts)) {
    if (options.boot_id == 0) options.boot_id = RandomBootId();
  }

  void Serve();
  void Handle(nng_msg* msg, WitnessClock::time_point now);
  void Emit(const LeaseEvent& ev) {
    LogEvent(ev);
    if (options.on_event) options.on_event(ev);
  }
  // At most one warning per second, so a flood of garbage cannot flood the log.
  void WarnBadRequest(const std::string& peer, const std::string& why,
                      WitnessClock::time_point now);

  Options options;
  nng_socket socket = NNG_SOCKET_INITIALIZER;
  bool open = false;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::thread thread;
  // Serving thread only, once started.
  std::unique_ptr<WitnessLease> lease;
  WitnessClock::time_point last_bad_warning{};
  uint64_t bad_suppressed = 0;
};

void WitnessServer::Impl::Serve() {
  // A thread entry point: nothing may escape it (STYLE.md §5).
  try {
    WitnessClock::time_point last_sweep = WitnessClock::now();
    while (!stopping.load(std::memory_order_acquire)) {
      nng_msg* msg = nullptr;
      int rv = nng_recvmsg(socket, &msg, 0);
      const WitnessClock::time_point now = WitnessClock::now();
      if (rv == 0) {
        Handle(msg, now);
      } else if (rv == NNG_ECLOSED) {
        break;
      } else if (rv != NNG_ETIMEDOUT) {
        PBX_LOG(kWarn, kLog, "receive failed: {}", nng_strerror(rv));
      }
      if (now - last_sweep >= milliseconds(kPollMs)) {
        last_sweep = now;
        for (const LeaseEvent& ev : lease->Expire(now)) Emit(ev);
      }
    }
  } catch (const std::exception& e) {
    PBX_LOG(kError, kLog, "serving thread failed: {}", e.what());
    std::abort();
  } catch (...) {
    PBX_LOG(kError, kLog, "serving thread failed with an unknown exception");
    std::abort();
  }
}

void WitnessServer::Impl::Handle(nng_msg* msg, WitnessClock::time_point now) {
  Result<LeaseRequest> request = DecodeLeaseRequest(
      std::string_view(static_cast<const char*>(nng_msg_body(msg)), nng_msg_len(msg)));
  LeaseReply reply;
  if (request.ok()) {
    LeaseEvent ev;
    reply = lease->Decide(*request, now, &ev);
    // Only our own text and the peer address: rejected names may hold anything.
    if (ev.kind == LeaseEvent::Kind::kBadRequest) WarnBadRequest(PeerOf(msg), ev.detail, now);
    Emit(ev);
  } else {
    reply.witness_boot_id = lease->boot_id();
    reply.error = request.status().message();
    WarnBadRequest(PeerOf(msg), reply.error, now);
    LeaseEvent ev;
    ev.kind = LeaseEvent::Kind::kBadRequest;
    ev.detail = reply.error;
    Emit(ev);
  }
  nng_msg_free(msg);

  const std::string bytes = EncodeLeaseReply(reply);
  nng_msg* out = nullptr;
  if (int rv = nng_msg_alloc(&out, bytes.size()); rv != 0) {
    PBX_LOG(kWarn, kLog, "cannot allocate a reply: {}", nng_strerror(rv));
    return;
  }
  std::memcpy(nng_msg_body(out), bytes.data(), bytes.size());
  if (int rv = nng_sendmsg(socket, out, 0); rv != 0) {
    // The requester went away or timed out; it will ask again.
    nng_msg_free(out);
    PBX_LOG(kDebug, kLog, "reply not sent: {}", nng_strerror(rv));
  }
}

void WitnessServer::Impl::WarnBadRequest(const std::string& peer, const std::string& why,
                                         WitnessClock::time_point now) {
  if (now - last_bad_warning < std::chrono::seconds(1)) {
    ++bad_suppressed;
    return;
  }
  last_bad_warning = now;
  if (bad_suppressed > 0) {
    PBX_LOG(kWarn, kLog, "bad request from {}: {} ({} more since the last warning)", peer, why,
            bad_suppressed);
  } else {
    PBX_LOG(kWarn, kLog, "bad request from {}: {}", peer, why);
  }
  bad_suppressed = 0;
}

WitnessServer::WitnessServer(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

WitnessServer::~WitnessServer() { Stop(); }

uint64_t WitnessServer::boot_id() const { return impl_->options.boot_id; }

int WitnessServer::port() const { return impl_->port; }

Status WitnessServer::Start(const std::string& url) {
  Impl& s = *impl_;
  PBX_CHECK(!s.open);
  PBX_TRY(WitnessLease::ValidateOptions(s.options.lease));
  auto fail = [&](std::string_view what, int rv) {
    nng_close(s.socket);
    s.open = false;
    std::string msg = fmt::format("witness on {}: {}: {}", url, what, nng_strerror(rv));
    if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP) return Status::InvalidArgument(std::move(msg));
    return Status::Unavailable(std::move(msg));
  };
  if (int rv = nng_rep0_open(&s.socket); rv != 0) {
    return Status::Unavailable(fmt::format("witness: open: {}", nng_strerror(rv)));
  }
  s.open = true;
  // Set before the listener exists: NNG 1.5.2 does not apply a changed receive limit to
  // pipes that are already up, and this socket takes input from anyone who can reach it.
  if (int rv = nng_socket_set_size(s.socket, NNG_OPT_RECVMAXSZ, kRecvMax); rv != 0) {
    return fail("set recv-size-max", rv);
  }
  if (int rv = nng_socket_set_ms(s.socket, NNG_OPT_RECVTIMEO, kPollMs); rv != 0) {
    return fail("set recv timeout", rv);
  }
  if (int rv = nng_socket_set_ms(s.socket, NNG_OPT_SENDTIMEO, kPollMs); rv != 0) {
    return fail("set send timeout", rv);
  }
  nng_listener listener;
  if (int rv = nng_listener_create(&listener, s.socket, url.c_str()); rv != 0) {
    return fail("listener", rv);
  }
  if (int rv = nng_listener_start(listener, 0); rv != 0) return fail("listen", rv);
  int port = 0;
  if (nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port) != 0) port = 0;
  s.port = port;

  s.lease = std::make_unique<WitnessLease>(s.options.lease, s.options.boot_id, WitnessClock::now());
  s.stopping.store(false, std::memory_order_release);
  s.thread = std::thread([&s] { s.Serve(); });
  PBX_LOG(kInfo, kLog, "listening on {} (port {}), boot id {:016x}, start-up hold {} ms", url,
          s.port, s.options.boot_id, s.options.lease.startup_hold.count());
  return Status::Ok();
}

void WitnessServer::Stop() {
  Impl& s = *impl_;
  s.stopping.store(true, std::memory_order_release);
  if (s.thread.joinable()) s.thread.join();
  // Closed only after the serving thread is gone: one thread touches the socket at a time.
  if (s.open) {
    nng_close(s.socket);
    s.open = false;
  }
}

}  // namespace pbx::cluster
