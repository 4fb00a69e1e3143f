#include "node/cluster/heartbeat.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <random>
#include <utility>

#include <arpa/inet.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/array.h>
#include <kj/exception.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "node/cluster/heartbeat.capnp.h"
#include "node/cluster/nng_peer.h"
#include "node/core/capnp_codec.h"
#include "node/core/log.h"

namespace pbx::cluster {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr const char* kLog = "heartbeat";
// Room for pair1's hop-count header on top of the largest acceptable heartbeat.
constexpr size_t kRecvMax = kMaxHeartbeatBytes + 64;

int64_t ToNs(RoleTime t) {
  return std::chrono::duration_cast<nanoseconds>(t.time_since_epoch()).count();
}

RoleTime FromNs(int64_t ns) {
  return RoleTime(std::chrono::duration_cast<RoleClock::duration>(nanoseconds(ns)));
}

nng_duration ToNng(milliseconds ms) {
  return static_cast<nng_duration>(std::clamp<int64_t>(ms.count(), 1, INT32_MAX));
}

uint64_t RandomId() {
  std::random_device rd;
  uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return id != 0 ? id : 1;
}

wire::NodeRole ToWire(Role role) {
  switch (role) {
    case Role::kStarting:
      return wire::NodeRole::STARTING;
    case Role::kSyncing:
      return wire::NodeRole::SYNCING;
    case Role::kStandby:
      return wire::NodeRole::STANDBY;
    case Role::kActive:
      return wire::NodeRole::ACTIVE;
    case Role::kIsolated:
      return wire::NodeRole::ISOLATED;
    case Role::kMaintenance:
      return wire::NodeRole::MAINTENANCE;
  }
  return wire::NodeRole::UNKNOWN;
}

std::optional<Role> FromWire(wire::NodeRole role) {
  switch (role) {
    case wire::NodeRole::STARTING:
      return Role::kStarting;
    case wire::NodeRole::SYNCING:
      return Role::kSyncing;
    case wire::NodeRole::STANDBY:
      return Role::kStandby;
    case wire::NodeRole::ACTIVE:
      return Role::kActive;
    case wire::NodeRole::ISOLATED:
      return Role::kIsolated;
    case wire::NodeRole::MAINTENANCE:
      return Role::kMaintenance;
    case wire::NodeRole::UNKNOWN:
      break;
  }
  return std::nullopt;  // UNKNOWN, or an enumerant of a newer version
}

using capnp_codec::AsText;
using capnp_codec::FromText;

}  // namespace

HeartbeatInfo HeartbeatFromRole(const RoleMachine& machine, uint64_t last_seq, bool degraded) {
  HeartbeatInfo info;
  info.role = machine.role();
  info.epoch = machine.epoch();
  info.last_seq = last_seq;
  info.degraded = degraded;
  info.take_over_at_seq = machine.take_over_at_seq();
  info.dead_after = machine.dead_after();
  return info;
}

ev::PeerHeartbeat ToPeerHeartbeat(const ReceivedHeartbeat& heartbeat) {
  ev::PeerHeartbeat e;
  e.node_name = heartbeat.node_name;
  e.role = heartbeat.info.role;
  e.position = Position{heartbeat.info.epoch, heartbeat.info.last_seq};
  e.take_over_at_seq = heartbeat.info.take_over_at_seq;
  e.degraded = heartbeat.info.degraded;
  e.dead_after = heartbeat.info.dead_after;
  e.echo = heartbeat.echo;
  return e;
}

std::string EncodeHeartbeat(const HeartbeatMessage& m) {
  capnp::MallocMessageBuilder message;
  wire::Heartbeat::Builder b = message.initRoot<wire::Heartbeat>();
  b.setVersion(kHeartbeatProtocolVersion);
  b.setClusterId(AsText(m.cluster_id));
  b.setNodeName(AsText(m.node_name));
  b.setInstanceId(m.instance_id);
  b.setRole(ToWire(m.info.role));
  b.setEpoch(m.info.epoch);
  b.setLastSeq(m.info.last_seq);
  b.setDegraded(m.info.degraded);
  b.setTakeOverAtSeq(m.info.take_over_at_seq);
  b.setDeadAfterMs(static_cast<uint32_t>(
      std::clamp<int64_t>(m.info.dead_after.count(), 0, std::numeric_limits<uint32_t>::max())));
  b.setSentAtNs(m.sent_at_ns);
  b.setEchoSentAtNs(m.echo_sent_at_ns);
  b.setEchoHeldNs(m.echo_held_ns);
  return capnp_codec::ToBytes(message);
}

Result<HeartbeatMessage> DecodeHeartbeat(std::string_view bytes) {
  capnp_codec::DecodeLimits limits;
  limits.max_bytes = kMaxHeartbeatBytes;
  return capnp_codec::Decode<wire::Heartbeat>(
      "heartbeat", bytes, limits, [](wire::Heartbeat::Reader r) -> Result<HeartbeatMessage> {
        if (r.getVersion() == 0) return Status::Corruption("heartbeat without a version");
        std::optional<Role> role = FromWire(r.getRole());
        if (!role) {
          return Status::Corruption(
              fmt::format("heartbeat with unknown role {}", static_cast<int>(r.getRole())));
        }
        HeartbeatMessage m;
        m.cluster_id = FromText(r.getClusterId());
        m.node_name = FromText(r.getNodeName());
        if (m.node_name.empty()) return Status::Corruption("heartbeat without a node name");
        m.instance_id = r.getInstanceId();
        m.info.role = *role;
        m.info.epoch = r.getEpoch();
        m.info.last_seq = r.getLastSeq();
        m.info.degraded = r.getDegraded();
        m.info.take_over_at_seq = r.getTakeOverAtSeq();
        m.info.dead_after = milliseconds(r.getDeadAfterMs());
        m.sent_at_ns = r.getSentAtNs();
        m.echo_sent_at_ns = r.getEchoSentAtNs();
        m.echo_held_ns = r.getEchoHeldNs();
        return m;
      });
}

struct HeartbeatLink::Impl {
  enum class Drop : uint8_t { kGarbage, kForeign, kSelf };

  explicit Impl(Options opts) : options(std::move(opts)), instance_id(RandomId()) {}

  static void OnReceive(void* arg);
  void Handle(nng_msg* msg);
  // Counts a dropped heartbeat and logs at most one line per second.
  void Dropped(Drop kind, const std::string& why, RoleTime now);

  const Options options;
  const uint64_t instance_id;
  std::string cluster_id;
  std::string node_name;
  nng_socket rx = NNG_SOCKET_INITIALIZER;  // listens, receives
  nng_socket tx = NNG_SOCKET_INITIALIZER;  // dials the peer, sends
  bool rx_open = false;
  bool tx_open = false;
  bool listening = false;
  bool dialled = false;
  nng_aio* aio = nullptr;
  int port = 0;
  std::atomic<bool> stopping{false};

  mutable std::mutex mu;
  // Guarded by mu.
  int64_t first_sent_ns = 0;  // the range of timestamps we sent: echoes must fall inside
  int64_t last_sent_ns = 0;
  bool have_peer_stamp = false;
  int64_t peer_sent_ns = 0;  // the newest peer timestamp, echoed in our next heartbeat
  RoleTime peer_received_at{};
  uint64_t peer_instance = 0;
  std::optional<ReceivedHeartbeat> last;
  std::optional<nanoseconds> srtt;
  Counters counters;
  RoleTime last_warning{};
  uint64_t suppressed = 0;
};

void HeartbeatLink::Impl::OnReceive(void* arg) {
  Impl* s = static_cast<Impl*>(arg);
  // An NNG callback: nothing may escape it (STYLE.md §5).
  try {
    const int rv = nng_aio_result(s->aio);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED || s->stopping.load(std::memory_order_acquire)) {
      return;
    }
    if (rv == 0) {
      nng_msg* msg = nng_aio_get_msg(s->aio);
      nng_aio_set_msg(s->aio, nullptr);
      s->Handle(msg);
      nng_msg_free(msg);
    } else {
      PBX_LOG(kWarn, kLog, "receive failed: {}", nng_strerror(rv));
    }
    nng_recv_aio(s->rx, s->aio);
  } catch (const std::exception& e) {
    PBX_LOG(kError, kLog, "receive callback failed: {}", e.what());
    std::abort();
  } catch (...) {
    PBX_LOG(kError, kLog, "receive callback failed with an unknown exception");
    std::abort();
  }
}

void HeartbeatLink::Impl::Handle(nng_msg* msg) {
  const RoleTime now = RoleClock::now();
  Result<HeartbeatMessage> decoded = DecodeHeartbeat(
      std::string_view(static_cast<const char*>(nng_msg_body(msg)), nng_msg_len(msg)));
  if (!decoded.ok()) {
    Dropped(Drop::kGarbage, fmt::format("from {}: {}", PeerOf(msg), decoded.status().message()),
            now);
    return;
  }
  const HeartbeatMessage& m = *decoded;
  // Only our own names in these lines: the sender's may hold anything.
  if (m.cluster_id != cluster_id) {
    Dropped(Drop::kForeign, fmt::format("from {}: not of cluster {}", PeerOf(msg), cluster_id),
            now);
    return;
  }
  if (m.node_name == node_name) {
    Dropped(Drop::kSelf,
            fmt::format("from {}: carries our own name {} (is the peer URL ours?)", PeerOf(msg),
                        node_name),
            now);
    return;
  }

  ReceivedHeartbeat r;
  r.node_name = m.node_name;
  r.info = m.info;
  r.received_at = now;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (m.instance_id == peer_instance && m.sent_at_ns <= peer_sent_ns) {
      ++counters.stale;
      return;
    }
    peer_instance = m.instance_id;
    peer_sent_ns = m.sent_at_ns;
    peer_received_at = now;
    have_peer_stamp = true;
    if (m.echo_sent_at_ns != 0 && first_sent_ns != 0 && m.echo_sent_at_ns >= first_sent_ns &&
        m.echo_sent_at_ns <= last_sent_ns) {
      r.echo = FromNs(m.echo_sent_at_ns);
      const int64_t rtt_ns = ToNs(now) - m.echo_sent_at_ns - m.echo_held_ns;
      if (m.echo_held_ns >= 0 && rtt_ns >= 0) {
        const nanoseconds sample(rtt_ns);
        r.rtt = std::chrono::duration_cast<std::chrono::microseconds>(sample);
        srtt = srtt ? *srtt + (sample - *srtt) / 8 : sample;
      }
    }
    last = r;
    ++counters.received;
  }
  if (options.on_heartbeat) options.on_heartbeat(r);
}

void HeartbeatLink::Impl::Dropped(Drop kind, const std::string& why, RoleTime now) {
  std::unique_lock<std::mutex> lock(mu);
  switch (kind) {
    case Drop::kGarbage:
      ++counters.garbage;
      break;
    case Drop::kForeign:
      ++counters.foreign;
      break;
    case Drop::kSelf:
      ++counters.from_self;
      break;
  }
  // At most one line per second: a flood of garbage must not flood the log.
  if (last_warning != RoleTime{} && now - last_warning < std::chrono::seconds(1)) {
    ++suppressed;
    return;
  }
  last_warning = now;
  const uint64_t more = std::exchange(suppressed, 0);
  lock.unlock();
  if (more > 0) {
    PBX_LOG(kWarn, kLog, "dropped a heartbeat {} ({} more dropped since the last warning)", why,
            more);
  } else {
    PBX_LOG(kWarn, kLog, "dropped a heartbeat {}", why);
  }
}

HeartbeatLink::HeartbeatLink(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HeartbeatLink::~HeartbeatLink() { Stop(); }

Status HeartbeatLink::Start(const std::string& listen_url, const std::string& peer_url,
                            const std::string& cluster_id, const std::string& node_name) {
  Impl& s = *impl_;
  PBX_CHECK(!s.rx_open && !s.tx_open);
  if (cluster_id.empty() || node_name.empty()) {
    return Status::InvalidArgument("heartbeat link: cluster id and node name must not be empty");
  }
  s.cluster_id = cluster_id;
  s.node_name = node_name;
  s.stopping.store(false, std::memory_order_release);
  auto fail = [&](std::string_view what, int rv) {
    Stop();
    std::string msg =
        fmt::format("heartbeat link on {}: {}: {}", listen_url, what, nng_strerror(rv));
    if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP) return Status::InvalidArgument(std::move(msg));
    return Status::Unavailable(std::move(msg));
  };

  if (int rv = nng_pair1_open(&s.rx); rv != 0) return fail("open", rv);
  s.rx_open = true;
  // Set before the listener exists: NNG 1.5.2 does not apply a changed receive limit to
  // pipes that are already up, and this socket takes input from anyone who can reach it.
  if (int rv = nng_socket_set_size(s.rx, NNG_OPT_RECVMAXSZ, kRecvMax); rv != 0) {
    return fail("set recv-size-max", rv);
  }
  nng_listener listener;
  if (int rv = nng_listener_create(&listener, s.rx, listen_url.c_str()); rv != 0) {
    return fail("listener", rv);
  }
  if (int rv = nng_listener_start(listener, 0); rv != 0) return fail("listen", rv);
  s.listening = true;
  int port = 0;
  if (nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port) != 0) port = 0;
  s.port = port;
  if (int rv = nng_aio_alloc(&s.aio, &Impl::OnReceive, &s); rv != 0) return fail("aio", rv);
  nng_recv_aio(s.rx, s.aio);

  if (int rv = nng_pair1_open(&s.tx); rv != 0) return fail("open", rv);
  s.tx_open = true;
  // Nothing is ever read from the sending socket; a peer that sends on it is capped too.
  if (int rv = nng_socket_set_size(s.tx, NNG_OPT_RECVMAXSZ, kRecvMax); rv != 0) {
    return fail("set recv-size-max", rv);
  }
  PBX_LOG(kInfo, kLog, "listening on {} (port {}) as {} of cluster {}", listen_url, s.port,
          node_name, cluster_id);
  if (!peer_url.empty()) {
    Status dial = DialPeer(peer_url);
    if (!dial.ok()) {
      Stop();
      return dial;
    }
  }
  return Status::Ok();
}

Status HeartbeatLink::DialPeer(const std::string& peer_url) {
  Impl& s = *impl_;
  PBX_CHECK(s.tx_open && !s.dialled);
  nng_dialer dialer;
  if (int rv = nng_dialer_create(&dialer, s.tx, peer_url.c_str()); rv != 0) {
    return Status::InvalidArgument(
        fmt::format("heartbeat peer url {} is not usable: {}", peer_url, nng_strerror(rv)));
  }
  auto fail = [&](std::string_view what, int rv) {
    nng_dialer_close(dialer);
    return Status::Unavailable(
        fmt::format("heartbeat link to {}: {}: {}", peer_url, what, nng_strerror(rv)));
  };
  if (int rv = nng_dialer_set_ms(dialer, NNG_OPT_RECONNMINT, ToNng(s.options.reconnect_min));
      rv != 0) {
    return fail("set reconnect-time-min", rv);
  }
  if (int rv = nng_dialer_set_ms(dialer, NNG_OPT_RECONNMAXT, ToNng(s.options.reconnect_max));
      rv != 0) {
    return fail("set reconnect-time-max", rv);
  }
  // Non-blocking: a peer that is down now is redialled in the background.
  if (int rv = nng_dialer_start(dialer, NNG_FLAG_NONBLOCK); rv != 0) return fail("dial", rv);
  s.dialled = true;
  PBX_LOG(kInfo, kLog, "dialling the peer at {}", peer_url);
  return Status::Ok();
}

void HeartbeatLink::Stop() {
  Impl& s = *impl_;
  s.stopping.store(true, std::memory_order_release);
  // NNG 1.5.2 hangs forever in nng_close() if a receiving TCP pipe is closed between reading
  // a message's header and its body (nanomsg/nng#616): the reaper thread waits for a transfer
  // that never ends, and every later close in the process hangs behind it. Measured here: a
  // link closed right after a heartbeat was sent to it hung within a few hundred tries. So:
  // 1. Stop reading (this also waits for a callback in progress). With no reader and pair1's
  //    zero-length receive queue, the next heartbeat to arrive is parked in the pipe and the
  //    transport stops reading the connection.
  // 2. Close the sending socket: nothing is ever sent to it, so it has no read to interrupt.
  // 3. Wait until a heartbeat is parked (the receive fd becomes readable) or, if the peer is
  //    silent, close_quiesce passes; then close the receiving socket. A silent peer that
  //    sends at exactly that instant remains a (microseconds-wide) risk.
  // NNG's order for our aio is kept: stop, close, then free.
  if (s.aio != nullptr) nng_aio_stop(s.aio);
  if (s.tx_open) {
    nng_close(s.tx);
    s.tx_open = false;
  }
  if (s.rx_open) {
    int fd = -1;
    if (s.listening && s.options.close_quiesce.count() > 0 &&
        nng_socket_get_int(s.rx, NNG_OPT_RECVFD, &fd) == 0) {
      pollfd pfd{fd, POLLIN, 0};
      (void)poll(&pfd, 1, static_cast<int>(s.options.close_quiesce.count()));
    }
    nng_close(s.rx);
    s.rx_open = false;
  }
  if (s.aio != nullptr) {
    nng_aio_free(s.aio);
    s.aio = nullptr;
  }
  s.listening = false;
  s.dialled = false;
}

Status HeartbeatLink::Send(const HeartbeatInfo& info) {
  Impl& s = *impl_;
  if (!s.tx_open) return Status::Unavailable("heartbeat link not started");
  HeartbeatMessage m;
  m.cluster_id = s.cluster_id;
  m.node_name = s.node_name;
  m.instance_id = s.instance_id;
  m.info = info;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    // Stamped before it is handed to NNG: the role machine's serving license counts from
    // the send time, so the stamp must not be later than the real send.
    int64_t now_ns = ToNs(RoleClock::now());
    // Strictly increasing: the receiver drops a heartbeat not newer than the last one.
    if (now_ns <= s.last_sent_ns) now_ns = s.last_sent_ns + 1;
    if (s.first_sent_ns == 0) s.first_sent_ns = now_ns;
    s.last_sent_ns = now_ns;
    m.sent_at_ns = now_ns;
    if (s.have_peer_stamp) {
      m.echo_sent_at_ns = s.peer_sent_ns;
      m.echo_held_ns = std::max<int64_t>(0, now_ns - ToNs(s.peer_received_at));
    }
  }
  const std::string bytes = EncodeHeartbeat(m);
  nng_msg* msg = nullptr;
  if (int rv = nng_msg_alloc(&msg, bytes.size()); rv != 0) {
    return Status::Internal(fmt::format("nng_msg_alloc: {}", nng_strerror(rv)));
  }
  std::memcpy(nng_msg_body(msg), bytes.data(), bytes.size());
  if (int rv = nng_sendmsg(s.tx, msg, NNG_FLAG_NONBLOCK); rv != 0) {
    nng_msg_free(msg);  // not consumed on failure
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.counters.send_dropped;
    return Status::Unavailable(fmt::format("heartbeat not sent: {}", nng_strerror(rv)));
  }
  std::lock_guard<std::mutex> lock(s.mu);
  ++s.counters.sent;
  return Status::Ok();
}

int HeartbeatLink::port() const { return impl_->port; }

std::optional<RoleTime> HeartbeatLink::last_heard() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->last) return std::nullopt;
  return impl_->last->received_at;
}

std::optional<std::chrono::microseconds> HeartbeatLink::rtt() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->srtt) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::microseconds>(*impl_->srtt);
}

std::optional<ReceivedHeartbeat> HeartbeatLink::last_received() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last;
}

HeartbeatLink::Counters HeartbeatLink::counters() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->counters;
}

}  // namespace pbx::cluster
