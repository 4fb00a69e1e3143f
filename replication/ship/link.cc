#include "replication/ship/link.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <thread>

#include <fmt/format.h>
#include <nng/protocol/pair1/pair.h>
#include <sys/eventfd.h>

#include "node/core/log.h"

namespace pbx::ship {
namespace {

nng_duration ToNng(std::chrono::milliseconds ms) {
  return static_cast<nng_duration>(std::clamp<int64_t>(ms.count(), 1, INT32_MAX));
}

Status NngError(const std::string& what, int rv) {
  return Status::Unavailable(fmt::format("{}: {}", what, nng_strerror(rv)));
}

}  // namespace

Result<std::unique_ptr<Link>> Link::Open(const LinkOptions& options) {
  std::unique_ptr<Link> link(new Link());
  link->events_ = new PipeEvents();
  if (int rv = nng_pair1_open(&link->socket_); rv != 0) return NngError("nng_pair1_open", rv);
  link->open_.store(true);
  // Options first: RECVMAXSZ must not change once pipes exist (NNG 1.5.2 defect list).
  if (int rv = nng_socket_set_size(link->socket_, NNG_OPT_RECVMAXSZ, options.recv_max_bytes);
      rv != 0) {
    return NngError("setting NNG_OPT_RECVMAXSZ", rv);
  }
  if (int rv = nng_socket_set_ms(link->socket_, NNG_OPT_SENDTIMEO, ToNng(options.send_timeout));
      rv != 0) {
    return NngError("setting NNG_OPT_SENDTIMEO", rv);
  }
  if (int rv = nng_socket_set_ms(link->socket_, NNG_OPT_RECONNMINT, ToNng(options.reconnect_min));
      rv != 0) {
    return NngError("setting NNG_OPT_RECONNMINT", rv);
  }
  if (int rv = nng_socket_set_ms(link->socket_, NNG_OPT_RECONNMAXT, ToNng(options.reconnect_max));
      rv != 0) {
    return NngError("setting NNG_OPT_RECONNMAXT", rv);
  }
  if (int rv = nng_socket_get_int(link->socket_, NNG_OPT_RECVFD, &link->recv_fd_); rv != 0) {
    return NngError("getting NNG_OPT_RECVFD", rv);
  }
  link->events_->event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (link->events_->event_fd < 0) {
    return Status::Io(fmt::format("eventfd: {}", std::strerror(errno)));
  }
  for (nng_pipe_ev ev : {NNG_PIPE_EV_ADD_POST, NNG_PIPE_EV_REM_POST}) {
    if (int rv = nng_pipe_notify(link->socket_, ev, &Link::OnPipe, link->events_); rv != 0) {
      return NngError("nng_pipe_notify", rv);
    }
  }
  return link;
}

Result<std::unique_ptr<Link>> Link::Listen(const std::string& url, const LinkOptions& options) {
  PBX_ASSIGN_OR_RETURN(std::unique_ptr<Link> link, Open(options));
  nng_listener listener;
  if (int rv = nng_listen(link->socket_, url.c_str(), &listener, 0); rv != 0) {
    return NngError("listening on " + url, rv);
  }
  link->url_ = url;
  int port = 0;
  if (nng_listener_get_int(listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
    // tcp://host:0 -> tcp://host:<bound port>
    const size_t colon = url.rfind(':');
    if (colon != std::string::npos && url.compare(0, 6, "tcp://") == 0) {
      link->url_ = url.substr(0, colon + 1) + std::to_string(port);
    }
  }
  return link;
}

Result<std::unique_ptr<Link>> Link::Dial(const std::string& url, const LinkOptions& options) {
  PBX_ASSIGN_OR_RETURN(std::unique_ptr<Link> link, Open(options));
  // Non-blocking: a refused first attempt is retried in the background, every
  // reconnect_min..reconnect_max, for as long as the socket lives.
  if (int rv = nng_dial(link->socket_, url.c_str(), nullptr, NNG_FLAG_NONBLOCK); rv != 0) {
    return NngError("dialling " + url, rv);
  }
  link->url_ = url;
  return link;
}

Link::~Link() {
  Close();
  if (events_ != nullptr) {
    if (events_->event_fd >= 0) ::close(events_->event_fd);
    delete events_;
  }
}

void Link::Close(std::chrono::milliseconds bound) {
  if (!open_.exchange(false)) return;
  // On a helper thread, so that an NNG close that never returns (class comment) costs a
  // thread and a socket, not the caller.
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> closed = done->get_future();
  std::thread([socket = socket_, done] {
    nng_close(socket);
    done->set_value();
  }).detach();
  if (closed.wait_for(bound) == std::future_status::ready) return;
  PBX_LOG(kError, "ship",
          "closing the socket of {} did not finish within {} ms (an NNG 1.5.2 defect); it is "
          "left behind",
          url_, bound.count());
  // The pipe callbacks may still run: their state must stay valid.
  events_ = nullptr;
}

void Link::OnPipe(nng_pipe /*pipe*/, nng_pipe_ev event, void* arg) {
  // On an NNG thread: count and wake, nothing that could block.
  auto* events = static_cast<PipeEvents*>(arg);
  if (event == NNG_PIPE_EV_ADD_POST) {
    events->pipes.fetch_add(1);
    events->added.fetch_add(1);
  } else {
    events->pipes.fetch_sub(1);
    events->removed.fetch_add(1);
  }
  const uint64_t one = 1;
  (void)!::write(events->event_fd, &one, sizeof(one));
}

void Link::Wake() {
  const uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the waiter wakes anyway.
  (void)!::write(events_->event_fd, &one, sizeof(one));
}

Link::Events Link::Wait(std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  const int timeout = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 60'000));
  pollfd fds[2] = {{recv_fd_, POLLIN, 0}, {events_->event_fd, POLLIN, 0}};
  if (::poll(fds, 2, timeout) > 0 && (fds[1].revents & POLLIN) != 0) {
    uint64_t count;
    (void)!::read(events_->event_fd, &count, sizeof(count));
  }
  Events events;
  const uint64_t added = events_->added.load();
  const uint64_t removed = events_->removed.load();
  events.pipes_added = added - seen_added_;
  events.pipes_removed = removed - seen_removed_;
  seen_added_ = added;
  seen_removed_ = removed;
  return events;
}

std::optional<std::string> Link::TryRecv() {
  nng_msg* msg = nullptr;
  if (nng_recvmsg(socket_, &msg, NNG_FLAG_NONBLOCK) != 0) return std::nullopt;
  std::string bytes(static_cast<const char*>(nng_msg_body(msg)), nng_msg_len(msg));
  nng_msg_free(msg);
  return bytes;
}

void Link::DrainUntil(const std::function<bool(const std::string&)>& last,
                      std::chrono::milliseconds max) {
  const auto give_up = std::chrono::steady_clock::now() + max;
  while (connected() && std::chrono::steady_clock::now() < give_up) {
    Wait(give_up);
    while (std::optional<std::string> bytes = TryRecv()) {
      if (last(*bytes)) return;
    }
  }
}

Status Link::Send(std::string_view bytes) {
  nng_msg* msg = nullptr;
  if (int rv = nng_msg_alloc(&msg, bytes.size()); rv != 0) return NngError("nng_msg_alloc", rv);
  std::memcpy(nng_msg_body(msg), bytes.data(), bytes.size());
  if (int rv = nng_sendmsg(socket_, msg, 0); rv != 0) {
    nng_msg_free(msg);  // not consumed on failure
    return NngError("send", rv);
  }
  return Status::Ok();
}

}  // namespace pbx::ship
