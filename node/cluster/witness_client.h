#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "node/cluster/witness_lease.h"
#include "node/core/status.h"

namespace pbx::cluster {

// A node's connection to pbx-witness: asks for, renews and releases the lease of its
// cluster over NNG req/rep (tcp://host:port).
//
// Safety rule. The node takes the instant *before sending* a request as the start of its
// lease, so its lease end (sent_at + lease_ms, LeaseReply::lease_valid_until) is never later
// than the witness's (received_at + lease_ms): the witness receives the request after it was
// sent. Hence:
//  - an active that cannot renew must stop serving before lease_valid_until (self-fencing);
//  - a standby promotes only on a grant, which the witness gives only once the old holder's
//    lease has expired on the witness's clock, i.e. after the old active stopped.
// Both clocks are monotonic; the rule assumes their rates agree, which holds to a few ppm,
// i.e. microseconds over a lease. Nodes should stop with some margin before the instant.
// A reply delayed in the network only shortens the lease as the node sees it, never extends
// it. NNG's own resend is pushed far beyond any request timeout: a request goes out once.
//
// The client remembers its last grant and presents it (LeaseRequest::held_boot_id) while it
// is valid, so the holder keeps its lease through a witness restart (see WitnessLease).
//
// Thread-safe: one request is in flight at a time; concurrent callers wait on a mutex.
// The connection is made in the background and remade after the witness restarts.
class WitnessClient {
 public:
  struct Options {
    // Background redial after a connection fails or drops.
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{500};
  };

  // Starts dialling `url` (e.g. "tcp://10.0.0.3:7500") in the background; fails only on a
  // malformed URL or an NNG error, not when the witness is down.
  static Result<std::unique_ptr<WitnessClient>> Connect(const std::string& url,
                                                        const Options& options);
  static Result<std::unique_ptr<WitnessClient>> Connect(const std::string& url) {
    return Connect(url, Options{});
  }
  ~WitnessClient();
  WitnessClient(const WitnessClient&) = delete;
  WitnessClient& operator=(const WitnessClient&) = delete;

  // Sends `request` (held_boot_id is filled in by the client) and waits at most `timeout`
  // for the reply. Returns the reply with lease_valid_until set by the safety rule, even
  // when it is a refusal. Errors: Unavailable (no connection to the witness within
  // `timeout`), Timeout (sent, no reply in time), Corruption (undecodable reply),
  // InvalidArgument (`timeout` not positive, or the witness rejected the request: the
  // message carries its reason).
  Result<LeaseReply> Request(const LeaseRequest& request, std::chrono::milliseconds timeout);

  const std::string& url() const;

 private:
  struct Impl;
  explicit WitnessClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::cluster
