#include "node/admin/server_thread.h"

#include <chrono>
#include <cstdlib>
#include <exception>

#include <fmt/format.h>
#include <sys/socket.h>

#include "node/core/log.h"

namespace pbx::admin {
namespace {
constexpr auto kStartDeadline = std::chrono::seconds(5);
}  // namespace

Status ServerThread::Start(const std::string& address, uint16_t port) {
  address_ = address;
  // httplib's default sets SO_REUSEPORT, which would let a second pbxd bind the same port and
  // silently take half the connections; SO_REUSEADDR alone still allows a quick restart.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  if (port == 0) {
    int bound = server_.bind_to_any_port(address);
    if (bound <= 0) return Status::Unavailable(fmt::format("cannot bind {}:0", address));
    port_ = static_cast<uint16_t>(bound);
  } else {
    if (!server_.bind_to_port(address, port)) {
      return Status::Unavailable(
          fmt::format("cannot bind {}:{} (in use or not permitted?)", address, port));
    }
    port_ = port;
  }

  listener_ = std::thread([this] {
    try {
      server_.listen_after_bind();
    } catch (const std::exception& e) {
      PBX_LOG(kError, "api", "listener thread: unexpected exception: {}", e.what());
      std::abort();
    } catch (...) {
      PBX_LOG(kError, "api", "listener thread: unexpected exception");
      std::abort();
    }
    listener_done_ = true;
  });
  // httplib 0.11 has no wait_until_ready(): poll is_running() against a deadline.
  const auto deadline = std::chrono::steady_clock::now() + kStartDeadline;
  while (!server_.is_running()) {
    if (listener_done_ || std::chrono::steady_clock::now() > deadline) {
      Stop();
      return Status::Unavailable(fmt::format("server on {}:{} did not start", address, port_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::Ok();
}

void ServerThread::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (!listener_.joinable()) return;
  // httplib's stop() does nothing before the listener runs, and must be called only once;
  // the listener marks itself running first thing, so this wait is short.
  while (!server_.is_running() && !listener_done_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_.stop();
  listener_.join();
  PBX_LOG(kInfo, "api", "stopped listening on {}:{}", address_, port_);
}

}  // namespace pbx::admin
