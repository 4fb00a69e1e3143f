#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "node/core/status.h"

namespace pbx::cluster {

// Monotonic: a lease is a duration, and wall-clock steps must not stretch or cut it.
using WitnessClock = std::chrono::steady_clock;

// Bounds of the lease a node may ask for. Below the minimum, renewals cost more than they
// protect; above the maximum, a dead active would block promotion for too long.
inline constexpr std::chrono::milliseconds kMinWitnessLease{50};
inline constexpr std::chrono::milliseconds kMaxWitnessLease{60'000};
// Cluster ids and node names: 1..64 characters of [A-Za-z0-9._:@-] (they end up in logs).
inline constexpr size_t kMaxWitnessNameLength = 64;
// Requests and replies are a few hundred bytes; anything larger is hostile.
inline constexpr size_t kMaxWitnessMessageBytes = 4096;
inline constexpr uint32_t kWitnessProtocolVersion = 1;

// What a node asks of the witness (wire: witness.capnp LeaseRequest).
struct LeaseRequest {
  std::string cluster_id;
  std::string node_name;
  uint64_t epoch = 0;
  uint32_t lease_ms = 0;
  // The holder gives the lease up at once (planned switchover); lease_ms is ignored.
  bool release = false;
  // witness_boot_id of the still-valid lease the requester holds from an earlier witness
  // process, or 0. WitnessClient fills it in; see WitnessLease on the start-up hold.
  uint64_t held_boot_id = 0;
};

// What the witness answers (wire: witness.capnp LeaseReply).
struct LeaseReply {
  bool granted = false;
  // The current holder (the requester when granted), or empty if nobody holds the lease.
  std::string holder;
  // How much longer the holder's lease runs, rounded up. Refused with an empty holder: the
  // witness is in its start-up hold for this much longer.
  uint32_t remaining_ms = 0;
  uint64_t witness_boot_id = 0;
  // Non-empty when the request was malformed or out of bounds.
  std::string error;
  // Not on the wire: set by WitnessClient to the instant (local clock) before which the
  // requester may act as the holder. See the safety rule in witness_client.h. For a refusal
  // or a release it is the time the request was sent, i.e. already over.
  WitnessClock::time_point lease_valid_until{};
};

// Something worth logging that a decision changed, reported by WitnessLease.
struct LeaseEvent {
  enum class Kind : uint8_t {
    kNone,        // nothing changed (e.g. a release from a node that does not hold it)
    kGrant,       // a lease was granted with nobody, or the same node, holding it before
    kHandover,    // granted to a node other than the previous holder, whose lease had ended
    kRenew,       // the holder extended its lease (10 per second: not logged at info)
    kRelease,     // the holder gave the lease up
    kExpire,      // a lease ran out without renewal (reported by WitnessLease::Expire)
    kRefuse,      // someone else holds the lease, or the start-up hold is running
    kBadRequest,  // malformed or out of bounds: the reply carries the error
  };
  Kind kind = Kind::kNone;
  std::string cluster_id;
  std::string node_name;        // the requester; for kExpire the holder whose lease ended
  std::string previous_holder;  // kHandover: the previous holder; kRefuse: the current one
  uint64_t epoch = 0;
  uint32_t lease_ms = 0;
  WitnessClock::time_point lease_end{};  // kGrant/kHandover/kRenew: the witness's lease end
  std::string detail;                    // kBadRequest: the error; kRefuse: why
};

// The witness's lease table: at most one holder per cluster id at any time. A pure state
// machine (no I/O, no clock of its own: `now` is passed in) so it is table-tested without
// sleeping.
//
// Rules for a request at `now`:
//  - malformed (names, lease_ms outside [kMinWitnessLease, max_lease]) -> error, no change;
//  - release from the holder -> the lease ends at `now`; from anyone else -> no change;
//  - nobody holds it (never granted, expired or released), or the requester holds it ->
//    granted until now + lease_ms;
//  - someone else holds it -> refused with the holder and its remaining time.
//
// Start-up hold: a restarted witness has forgotten the leases its previous process granted,
// some of which may still run (up to max_lease). So for `startup_hold` after boot it grants
// a cluster it has not granted yet only to a requester that presents a still-valid lease of
// an earlier witness process (held_boot_id != 0 and != our boot id): that can only be the
// holder, so the active keeps its lease through a witness restart while the standby waits.
// The hold must be at least the max_lease of the previous witness process.
//
// Not thread-safe: one owner (WitnessServer's serving thread).
class WitnessLease {
 public:
  struct Options {
    std::chrono::milliseconds max_lease = kMaxWitnessLease;
    std::chrono::milliseconds startup_hold = kMaxWitnessLease;
    // Memory bound against a flood of made-up cluster ids; idle entries are evicted first.
    size_t max_clusters = 1024;
  };

  // REQUIRES: kMinWitnessLease <= options.max_lease <= kMaxWitnessLease,
  //           options.startup_hold >= 0, options.max_clusters > 0 (see ValidateOptions).
  WitnessLease(Options options, uint64_t boot_id, WitnessClock::time_point boot_time);
  WitnessLease(const WitnessLease&) = delete;
  WitnessLease& operator=(const WitnessLease&) = delete;

  static Status ValidateOptions(const Options& options);

  // Applies `request` received at `now`; fills `*event` (if not null) with what changed.
  LeaseReply Decide(const LeaseRequest& request, WitnessClock::time_point now,
                    LeaseEvent* event = nullptr);

  // Leases that ran out since the last call, each reported once (kExpire events).
  std::vector<LeaseEvent> Expire(WitnessClock::time_point now);

  uint64_t boot_id() const { return boot_id_; }
  size_t cluster_count() const { return clusters_.size(); }

 private:
  struct Entry {
    std::string holder;  // the last holder; it holds the lease while now < expires
    uint64_t epoch = 0;
    WitnessClock::time_point expires{};
    bool expiry_reported = true;
    bool granted_since_boot = false;  // once true, the start-up hold no longer applies
  };

  bool Holds(const Entry& entry, WitnessClock::time_point now) const {
    return !entry.holder.empty() && now < entry.expires;
  }
  void EvictIdle(WitnessClock::time_point now);

  Options options_;
  uint64_t boot_id_;
  WitnessClock::time_point hold_end_;
  std::unordered_map<std::string, Entry> clusters_;
};

// Wire encoding (witness.capnp). Decoding never trusts its input: anything that is not a
// well-formed message of the expected type, or is larger than kMaxWitnessMessageBytes,
// gives Corruption. It checks the message shape only; WitnessLease checks the values.
std::string EncodeLeaseRequest(const LeaseRequest& request);
Result<LeaseRequest> DecodeLeaseRequest(std::string_view bytes);
std::string EncodeLeaseReply(const LeaseReply& reply);
Result<LeaseReply> DecodeLeaseReply(std::string_view bytes);

}  // namespace pbx::cluster
