#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "node/core/status.h"

namespace pbx::admin {

// Runs the accept loop of an httplib server (HTTP or HTTPS) on a thread of its own.
// Start and Stop may be called from any thread; `server` must outlive this object.
class ServerThread {
 public:
  explicit ServerThread(httplib::Server& server) : server_(server) {}
  ~ServerThread() { Stop(); }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  // Binds `address`:`port` (0: a free port) and returns once the server accepts.
  Status Start(const std::string& address, uint16_t port);
  uint16_t port() const { return port_; }
  // Stops accepting and waits for requests in flight. Idempotent.
  void Stop();

 private:
  httplib::Server& server_;
  std::string address_;
  uint16_t port_ = 0;
  std::thread listener_;
  std::atomic<bool> listener_done_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;  // GUARDED_BY(stop_mu_)
};

}  // namespace pbx::admin
