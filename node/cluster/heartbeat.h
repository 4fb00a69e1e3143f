#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "node/cluster/role.h"
#include "node/core/status.h"

namespace pbx::cluster {

// A heartbeat is about 150 bytes; anything beyond this is not one (NNG_OPT_RECVMAXSZ).
inline constexpr size_t kMaxHeartbeatBytes = 1024;
inline constexpr uint32_t kHeartbeatProtocolVersion = 1;

// What a node says about itself in each heartbeat (wire: heartbeat.capnp Heartbeat).
struct HeartbeatInfo {
  Role role = Role::kStarting;
  uint64_t epoch = 0;
  uint64_t last_seq = 0;  // committed (active) or applied (follower)
  bool degraded = false;
  uint64_t take_over_at_seq = 0;
  std::chrono::milliseconds dead_after{0};
};

// The part of HeartbeatInfo the role machine knows; the store gives `last_seq`, the shipper
// `degraded`.
HeartbeatInfo HeartbeatFromRole(const RoleMachine& machine, uint64_t last_seq, bool degraded);

// The wire message, exposed for tests and tools. Timestamps are the sender's steady clock.
struct HeartbeatMessage {
  std::string cluster_id;
  std::string node_name;
  uint64_t instance_id = 0;
  HeartbeatInfo info;
  int64_t sent_at_ns = 0;
  int64_t echo_sent_at_ns = 0;  // 0: nothing to echo yet
  int64_t echo_held_ns = 0;
};
std::string EncodeHeartbeat(const HeartbeatMessage& message);
// Never trusts its input: anything that is not a well-formed heartbeat of at most
// kMaxHeartbeatBytes with a version, a node name and a known role gives Corruption.
Result<HeartbeatMessage> DecodeHeartbeat(std::string_view bytes);

// A heartbeat from the peer as HeartbeatLink delivers it.
struct ReceivedHeartbeat {
  std::string node_name;
  HeartbeatInfo info;
  RoleTime received_at{};
  // Our send time of the newest of our heartbeats the peer had received, on our clock; {} if
  // none, or if the echoed value is not one this link sent (a stale or bogus echo must not
  // stretch the role machine's serving license).
  RoleTime echo{};
  // Round trip measured with this heartbeat's echo, if it had one.
  std::optional<std::chrono::microseconds> rtt;
};
// For RoleMachine::Step.
ev::PeerHeartbeat ToPeerHeartbeat(const ReceivedHeartbeat& heartbeat);

// The heartbeat link to the peer, on its own NNG sockets so that a large log message never
// delays a heartbeat: a pair1 socket listening on our heartbeat URL receives, a second pair1
// socket dialling the peer's URL sends. Sends never block: while the peer is down they are
// dropped and the dialer reconnects in the background (reconnect_min..reconnect_max).
//
// Received heartbeats are decoded on an NNG worker thread. Garbage, another cluster's
// heartbeats, heartbeats carrying our own node name and heartbeats older than one already
// seen are dropped, counted and logged (at most one line per second, component
// "heartbeat"). Each echo lets the sender measure the round trip without synchronised
// clocks (heartbeat.capnp).
//
// Thread-safe: Send() and the accessors may be called from any thread, but not while
// Start() or Stop() runs; Start(), DialPeer() and Stop() from the owner thread. `on_heartbeat` runs
// on an NNG worker thread, one call at a time; it must not block and must not call Stop() (post the
// heartbeat to the loop). After Stop() returns it is not called again.
class HeartbeatLink {
 public:
  struct Options {
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{200};
    // How long Stop() waits, at most, for the peer's connection to go quiet before closing
    // it (see Stop()). At least the peer's heartbeat interval.
    std::chrono::milliseconds close_quiesce{150};
    std::function<void(const ReceivedHeartbeat&)> on_heartbeat;
  };
  struct Counters {
    uint64_t sent = 0;
    uint64_t send_dropped = 0;  // no connection to the peer, or its queue was full
    uint64_t received = 0;      // delivered
    uint64_t garbage = 0;       // undecodable
    uint64_t foreign = 0;       // another cluster id
    uint64_t from_self = 0;     // our own node name
    uint64_t stale = 0;         // not newer than one already delivered
  };

  explicit HeartbeatLink(Options options);
  HeartbeatLink() : HeartbeatLink(Options{}) {}
  ~HeartbeatLink();  // Stop()s
  HeartbeatLink(const HeartbeatLink&) = delete;
  HeartbeatLink& operator=(const HeartbeatLink&) = delete;

  // Listens on `listen_url` ("tcp://0.0.0.0:7601", port 0 for tests) and, unless `peer_url`
  // is empty, dials it in the background. `cluster_id` and `node_name` go in every heartbeat
  // and filter the received ones. InvalidArgument for a malformed URL or empty names;
  // Unavailable if the address cannot be bound.
  // REQUIRES: not started.
  Status Start(const std::string& listen_url, const std::string& peer_url,
               const std::string& cluster_id, const std::string& node_name);
  // Dials the peer when Start() was given no peer URL.
  // REQUIRES: started, and no peer dialled yet.
  Status DialPeer(const std::string& peer_url);
  // Closes both sockets; returns once no callback runs any more. Idempotent. Takes up to
  // close_quiesce: NNG 1.5.2 can hang forever closing a connection in the middle of a
  // message (nanomsg/nng#616), so Stop() first stops reading and waits until the next
  // heartbeat is parked (or the peer stays silent) before closing.
  void Stop();

  // Sends one heartbeat now, stamped and carrying the echo, without blocking. Unavailable if
  // it could not be handed to a connection (the peer is down); the next one will try again.
  Status Send(const HeartbeatInfo& info);

  // The TCP port we listen on (useful with port 0); 0 for other transports or before Start.
  int port() const;
  // When the last heartbeat was delivered; empty if none yet.
  std::optional<RoleTime> last_heard() const;
  // Smoothed round trip (RFC 6298 style, gain 1/8); empty until an echo came back.
  std::optional<std::chrono::microseconds> rtt() const;
  std::optional<ReceivedHeartbeat> last_received() const;
  Counters counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::cluster
