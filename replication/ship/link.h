#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nng/nng.h>

#include "node/core/status.h"

// One NNG pair1 socket carrying the log between the active and the standby (DESIGN.md §3).
// Internal to replication/ship.
namespace pbx::ship {

// NNG_OPT_RECVMAXSZ for a side whose frames may be up to `max_frame_bytes`: some headroom,
// so that a frame a little too large reaches DecodeFrame and is refused by name; NNG drops
// the connection on anything larger still.
inline size_t RecvMaxBytes(size_t max_frame_bytes) { return max_frame_bytes + (64 << 10); }

struct LinkOptions {
  // NNG_OPT_RECVMAXSZ, set before any pipe exists (NOTES-deps.md §7): a larger message
  // makes NNG drop the connection, and the peer then starts a new session.
  size_t recv_max_bytes = 0;
  std::chrono::milliseconds send_timeout{1000};
  // The dialer's redial interval (NNG's default is a flat 1 s).
  std::chrono::milliseconds reconnect_min{50};
  std::chrono::milliseconds reconnect_max{500};
};

// The socket, owned (RAII), and the means to wait on it without polling: the socket's
// receive descriptor (NNG_OPT_RECVFD) and an eventfd that Wake() and the pipe callbacks
// write, in one poll(2). So the owning thread blocks in one place for everything: a
// message, a pipe coming or going, a wake-up from a commit, or its own deadline. No NNG
// aio is used; NNG's only callbacks here are the pipe notifications, which just count and
// write the eventfd.
//
// Closing, and an NNG 1.5.2 defect: nng_close can hang for good when it races with a
// message arriving (seen in our tests: the TCP pipe had read a message's length header and
// not yet submitted the read of its body when the close stopped that aio; the body read
// then never completes, and neither does the close). So the owners (LogShipper,
// LogReceiver) never close while the peer may be sending: they send a goodbye, which the
// peer answers with its own as its last message on the session (FORMAT.md), and
// DrainUntil() that answer. And Close() runs nng_close on a helper thread and gives up
// waiting after a bound (logged, the socket leaked) rather than hang the caller.
//
// Thread affinity: Wait, TryRecv, Send and DrainUntil belong to one thread (the
// shipper's or the receiver's); Wake, connected() and Close may be called from any thread.
// Destroy the Link only after that thread has been joined.
class Link {
 public:
  // Listens on `url` ("tcp://host:port"; port 0 picks a free one, see url()).
  static Result<std::unique_ptr<Link>> Listen(const std::string& url, const LinkOptions& options);
  // Dials `url` in the background and keeps redialling; returns at once.
  static Result<std::unique_ptr<Link>> Dial(const std::string& url, const LinkOptions& options);
  ~Link();  // Close()
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // What Wait saw, beyond messages (which TryRecv returns).
  struct Events {
    uint64_t pipes_added = 0;    // connections made since the previous Wait
    uint64_t pipes_removed = 0;  // connections lost since the previous Wait
  };
  // Blocks until a message may be received, Wake() was called, a pipe came or went, or
  // `deadline` passed (whichever is first; spurious returns are possible).
  Events Wait(std::chrono::steady_clock::time_point deadline);
  // One received message, without blocking; nullopt if none is waiting.
  std::optional<std::string> TryRecv();
  // Sends `bytes`, blocking at most LinkOptions::send_timeout (pair1 blocks while the peer
  // cannot take more, and when there is no peer).
  Status Send(std::string_view bytes);
  // Receives messages (and drops them) until `last` returns true for one, the connection
  // goes, or `max` passes: what the peer had in flight when it was told we leave.
  void DrainUntil(const std::function<bool(const std::string&)>& last,
                  std::chrono::milliseconds max);
  // Makes the current or next Wait return. Thread-safe, cheap.
  void Wake();
  // Closes the socket (the peer sees the connection go); later calls on it fail. Waits at
  // most `bound` for NNG (see the class comment). Idempotent.
  void Close(std::chrono::milliseconds bound = std::chrono::seconds(2));
  // A peer is connected. Thread-safe.
  bool connected() const { return events_->pipes.load() > 0; }
  // The URL listened on, with the port NNG actually bound; the dialled URL for Dial.
  const std::string& url() const { return url_; }

 private:
  // What NNG's pipe callbacks touch. Separate from the Link, so that it can be leaked
  // together with a socket whose close never finished.
  struct PipeEvents {
    std::atomic<int> pipes{0};
    std::atomic<uint64_t> added{0};
    std::atomic<uint64_t> removed{0};
    int event_fd = -1;
  };

  Link() = default;
  static Result<std::unique_ptr<Link>> Open(const LinkOptions& options);
  static void OnPipe(nng_pipe pipe, nng_pipe_ev event, void* arg);

  nng_socket socket_ = NNG_SOCKET_INITIALIZER;
  std::atomic<bool> open_{false};
  int recv_fd_ = -1;              // owned by NNG
  PipeEvents* events_ = nullptr;  // owned, unless a close hung (then leaked on purpose)
  std::string url_;
  uint64_t seen_added_ = 0;    // Wait's thread only
  uint64_t seen_removed_ = 0;  // Wait's thread only
};

}  // namespace pbx::ship
