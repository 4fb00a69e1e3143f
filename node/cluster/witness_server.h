#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "node/cluster/witness_lease.h"
#include "node/core/status.h"

namespace pbx::cluster {

// The serving side of pbx-witness: an NNG rep socket listening on a URL, answering each
// LeaseRequest from a WitnessLease. It faces hostile input: messages are capped at
// kMaxWitnessMessageBytes (larger ones drop the connection inside NNG), and a malformed
// request gets a reply with granted=false and an error, logged (rate-limited), never a crash.
//
// Logs each grant, handover, release and expiry as one line (component "witness"); renewals
// and refusals only at debug level.
//
// One serving thread owns the WitnessLease; it wakes at least every 100 ms to report
// expiries and to notice Stop(). Start/Stop/port/boot_id: owner thread only.
class WitnessServer {
 public:
  struct Options {
    WitnessLease::Options lease;
    // 0: a random id, drawn at construction.
    uint64_t boot_id = 0;
    // Called on the serving thread for every event (including kRenew and kExpire), after it
    // was logged. Must not block. For metrics and tests.
    std::function<void(const LeaseEvent&)> on_event;
  };

  explicit WitnessServer(Options options);
  WitnessServer() : WitnessServer(Options{}) {}
  ~WitnessServer();  // Stop()s.
  WitnessServer(const WitnessServer&) = delete;
  WitnessServer& operator=(const WitnessServer&) = delete;

  // Listens on `url` ("tcp://0.0.0.0:7500", "tcp://127.0.0.1:0", "ipc:///run/w.sock") and
  // starts serving. The start-up hold (WitnessLease) counts from here.
  // REQUIRES: not started.
  Status Start(const std::string& url);
  // Stops serving and closes the socket; returns within about 100 ms. Idempotent.
  void Stop();

  // The TCP port actually bound (useful with port 0); 0 for other transports.
  // REQUIRES: Start() succeeded.
  int port() const;
  uint64_t boot_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbx::cluster
