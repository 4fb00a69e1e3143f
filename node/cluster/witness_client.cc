#include "node/cluster/witness_client.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

namespace pbx::cluster {
namespace {

using std::chrono::milliseconds;

// NNG resends an unanswered request after NNG_OPT_REQ_RESENDTIME (default 60 s). A resend
// would be harmless for safety (it is received later, so the witness's lease ends later),
// but it is useless: the caller's timeout is far shorter and the caller retries with a
// fresh sent_at. So the resend time is pushed beyond any sensible timeout.
constexpr milliseconds kResendTime{10 * 60 * 1000};
// Replies are small; room is left for NNG's request-id header.
constexpr size_t kRecvMax = kMaxWitnessMessageBytes + 64;

nng_duration ToNng(milliseconds ms) {
  return static_cast<nng_duration>(std::clamp<int64_t>(ms.count(), 1, INT32_MAX));
}

}  // namespace

struct WitnessClient::Impl {
  // The lease this client was last granted, presented to a restarted witness while valid.
  struct Held {
    std::string cluster_id;
    std::string node_name;
    uint64_t boot_id = 0;
    WitnessClock::time_point valid_until{};
  };

  ~Impl() {
    if (open) nng_close(socket);
  }

  uint64_t HeldBootId(const LeaseRequest& request, WitnessClock::time_point now) const {
    if (!held || held->cluster_id != request.cluster_id || held->node_name != request.node_name ||
        now >= held->valid_until) {
      return 0;
    }
    return held->boot_id;
  }

  std::string url;
  nng_socket socket = NNG_SOCKET_INITIALIZER;
  bool open = false;
  std::mutex mu;             // serializes Request(): one request per req socket
  std::optional<Held> held;  // guarded by mu
};

Result<std::unique_ptr<WitnessClient>> WitnessClient::Connect(const std::string& url,
                                                              const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->url = url;
  auto fail = [&](std::string_view what, int rv) {
    return Status::Unavailable(
        fmt::format("witness client {}: {}: {}", url, what, nng_strerror(rv)));
  };
  if (int rv = nng_req0_open(&impl->socket); rv != 0) return fail("open", rv);
  impl->open = true;
  // Options go on the socket before the dialer exists: NNG 1.5.2 does not apply a changed
  // receive limit to pipes that are already up.
  if (int rv = nng_socket_set_size(impl->socket, NNG_OPT_RECVMAXSZ, kRecvMax); rv != 0) {
    return fail("set recv-size-max", rv);
  }
  if (int rv = nng_socket_set_ms(impl->socket, NNG_OPT_REQ_RESENDTIME, ToNng(kResendTime));
      rv != 0) {
    return fail("set resend time", rv);
  }
  nng_dialer dialer;
  if (int rv = nng_dialer_create(&dialer, impl->socket, url.c_str()); rv != 0) {
    return Status::InvalidArgument(
        fmt::format("witness url {} is not usable: {}", url, nng_strerror(rv)));
  }
  if (int rv = nng_dialer_set_ms(dialer, NNG_OPT_RECONNMINT, ToNng(options.reconnect_min));
      rv != 0) {
    return fail("set reconnect-time-min", rv);
  }
  if (int rv = nng_dialer_set_ms(dialer, NNG_OPT_RECONNMAXT, ToNng(options.reconnect_max));
      rv != 0) {
    return fail("set reconnect-time-max", rv);
  }
  // Non-blocking: a witness that is down now is redialled in the background.
  if (int rv = nng_dialer_start(dialer, NNG_FLAG_NONBLOCK); rv != 0) return fail("dial", rv);
  return std::unique_ptr<WitnessClient>(new WitnessClient(std::move(impl)));
}

WitnessClient::WitnessClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WitnessClient::~WitnessClient() = default;

const std::string& WitnessClient::url() const { return impl_->url; }

Result<LeaseReply> WitnessClient::Request(const LeaseRequest& request, milliseconds timeout) {
  if (timeout.count() <= 0) return Status::InvalidArgument("witness request timeout must be > 0");
  std::lock_guard<std::mutex> lock(impl_->mu);
  nng_socket socket = impl_->socket;

  // The safety rule: the lease starts now, before anything is sent.
  const WitnessClock::time_point sent_at = WitnessClock::now();
  const WitnessClock::time_point deadline = sent_at + timeout;
  LeaseRequest to_send = request;
  to_send.held_boot_id = impl_->HeldBootId(request, sent_at);
  const std::string bytes = EncodeLeaseRequest(to_send);

  nng_msg* msg = nullptr;
  if (int rv = nng_msg_alloc(&msg, bytes.size()); rv != 0) {
    return Status::Internal(fmt::format("nng_msg_alloc: {}", nng_strerror(rv)));
  }
  std::memcpy(nng_msg_body(msg), bytes.data(), bytes.size());
  // A req socket holds the request until a connection is up; the send timeout bounds that.
  (void)nng_socket_set_ms(socket, NNG_OPT_SENDTIMEO, ToNng(timeout));
  if (int rv = nng_sendmsg(socket, msg, 0); rv != 0) {
    nng_msg_free(msg);  // not consumed on failure
    return Status::Unavailable(
        fmt::format("witness {} not reachable: {}", impl_->url, nng_strerror(rv)));
  }

  const auto left = std::chrono::ceil<milliseconds>(deadline - WitnessClock::now());
  (void)nng_socket_set_ms(socket, NNG_OPT_RECVTIMEO, ToNng(left));
  nng_msg* reply_msg = nullptr;
  if (int rv = nng_recvmsg(socket, &reply_msg, 0); rv != 0) {
    std::string what = fmt::format("witness {}: no reply: {}", impl_->url, nng_strerror(rv));
    return rv == NNG_ETIMEDOUT ? Status::Timeout(std::move(what))
                               : Status::Unavailable(std::move(what));
  }
  Result<LeaseReply> decoded = DecodeLeaseReply(
      std::string_view(static_cast<const char*>(nng_msg_body(reply_msg)), nng_msg_len(reply_msg)));
  nng_msg_free(reply_msg);
  if (!decoded.ok()) return decoded.status();
  LeaseReply& reply = *decoded;
  if (!reply.error.empty()) {
    return Status::InvalidArgument(fmt::format("witness rejected the request: {}", reply.error));
  }

  if (reply.granted) {
    reply.lease_valid_until = sent_at + milliseconds(request.lease_ms);
    impl_->held = Impl::Held{request.cluster_id, request.node_name, reply.witness_boot_id,
                             reply.lease_valid_until};
  } else {
    reply.lease_valid_until = sent_at;
    if (impl_->held && impl_->held->cluster_id == request.cluster_id &&
        impl_->held->node_name == request.node_name) {
      impl_->held.reset();
    }
  }
  return decoded;
}

}  // namespace pbx::cluster
