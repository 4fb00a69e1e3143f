#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "node/core/status.h"

namespace pbx::media {

struct RelayConfig {
  // The address the relay's sockets bind (the VIP when clustered: IP_FREEBIND lets the
  // standby bind it before it holds the address). The SDP names the same address.
  std::string bind_address = "0.0.0.0";
  // RTP takes even ports in [port_min, port_max], RTCP the odd port above each.
  uint16_t port_min = 10000;
  uint16_t port_max = 20000;
  int workers = 0;  // worker threads; 0: one per core
};

// Names one relay for the life of the RtpRelay.
struct RelayId {
  uint64_t value = 0;
  auto operator<=>(const RelayId&) const = default;
};

// The two phones of a call. Packets from side A's phone go out to side B's and back.
enum class Side : uint8_t { kA = 0, kB = 1 };

// The PBX's ports of one relay: side A's phone talks RTP to a_port and RTCP to a_port + 1.
struct RelayPorts {
  RelayId id;
  uint16_t a_port = 0;
  uint16_t b_port = 0;
};

// What arrived from one side's phone (RTP and RTCP together).
struct LegCounters {
  uint64_t packets = 0;  // relayed to the other side
  uint64_t bytes = 0;    // UDP payload bytes of those packets
  // Not relayed: from someone other than the latched peer, too large, or the other side's
  // address is not known yet.
  uint64_t dropped = 0;
  // When the latest relayed packet arrived (steady clock); nullopt if none has yet.
  std::optional<std::chrono::steady_clock::time_point> last_packet;
};
struct RelayStats {
  LegCounters a, b;
};
struct RelayTotals {
  uint64_t packets = 0, bytes = 0, dropped = 0;
  std::optional<std::chrono::steady_clock::time_point> last_packet;
  size_t relays = 0;
};

// The RTP/RTCP relay that anchors each call's media on the PBX address. Worker threads
// (each with its own epoll) own the sockets of the relays assigned to them; these methods
// reach a worker through its mailbox (an eventfd), so the packet path takes no lock.
// Every packet and payload (voice, RFC 4733 telephone-events, RTCP) passes unchanged.
//
// Latching (symmetric RTP): a side's RTP, and separately its RTCP, go first to the
// address its SDP gave (SetPeer). The first packet received from that side latches its
// source as the peer (a phone behind NAT sends from elsewhere); from then on packets go
// there and packets from anyone else are dropped and counted.
//
// Thread-safe: every method may be called from any thread (in practice the signalling
// thread). Allocate and AllocateAt return once the sockets are bound, Release once they
// are closed, SetPeer once the worker uses the new address: each waits for the worker's
// current round of packets (microseconds), never for the network.
class RtpRelay {
 public:
  static Result<std::unique_ptr<RtpRelay>> Create(const RelayConfig& config);
  ~RtpRelay();  // stops the workers and closes every socket
  RtpRelay(const RtpRelay&) = delete;
  RtpRelay& operator=(const RtpRelay&) = delete;

  // A relay with two RTP/RTCP port pairs from the range (next fit, so a port just freed
  // is not reused at once; ports some other socket holds are skipped). Unavailable when
  // the range has no two free pairs left.
  Result<RelayPorts> Allocate();
  // A relay on exactly these ports: the new active re-creates its calls' relays after a
  // failover. InvalidArgument if a port is odd, outside the range or the two are equal;
  // Unavailable if one is in use.
  Result<RelayPorts> AllocateAt(uint16_t a_port, uint16_t b_port);

  // Where `side`'s phone said (in its SDP) it receives RTP and RTCP; `rtcp_port` 0 means
  // rtp_port + 1. A changed address (a re-INVITE that moved the stream) also forgets what
  // was latched for that side; the same address again keeps the latch. The unspecified
  // address (0.0.0.0, RFC 2543 hold) means: send this side nothing until it sends (and so
  // is latched) again. InvalidArgument if
  // `ip` is not an IP literal of the bind address's family; NotFound for an unknown id.
  Status SetPeer(RelayId id, Side side, std::string_view ip, uint16_t rtp_port,
                 uint16_t rtcp_port = 0);

  // Closes the relay's sockets; their ports are free when this returns. NotFound if
  // there is no such relay.
  Status Release(RelayId id);

  Result<RelayStats> Stats(RelayId id) const;
  RelayTotals Totals() const;

  class Impl;

 private:
  explicit RtpRelay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::media
