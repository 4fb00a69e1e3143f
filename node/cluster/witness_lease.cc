#include "node/cluster/witness_lease.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fmt/format.h>
#include <kj/array.h>
#include <kj/exception.h>

#include "node/cluster/witness.capnp.h"
#include "node/core/capnp_codec.h"
#include "node/core/log.h"

namespace pbx::cluster {
namespace {

using std::chrono::milliseconds;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '@' || c == '-';
}

bool IsValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxWitnessNameLength &&
         std::all_of(name.begin(), name.end(), IsNameChar);
}

// Rounded up, so that a refused node never underestimates how long the holder may serve.
uint32_t RemainingMs(WitnessClock::time_point end, WitnessClock::time_point now) {
  if (end <= now) return 0;
  auto ms = std::chrono::ceil<milliseconds>(end - now).count();
  return static_cast<uint32_t>(std::min<int64_t>(ms, std::numeric_limits<uint32_t>::max()));
}

// Returns why `request` is malformed, or an empty string.
std::string Validate(const LeaseRequest& request, milliseconds max_lease) {
  if (!IsValidName(request.cluster_id)) {
    return fmt::format("cluster_id must be 1..{} characters of [A-Za-z0-9._:@-]",
                       kMaxWitnessNameLength);
  }
  if (!IsValidName(request.node_name)) {
    return fmt::format("node_name must be 1..{} characters of [A-Za-z0-9._:@-]",
                       kMaxWitnessNameLength);
  }
  if (!request.release &&
      (request.lease_ms < kMinWitnessLease.count() || request.lease_ms > max_lease.count())) {
    return fmt::format("lease_ms {} is outside [{}, {}]", request.lease_ms,
                       kMinWitnessLease.count(), max_lease.count());
  }
  return {};
}

using capnp_codec::AsText;
using capnp_codec::FromText;
using capnp_codec::ToBytes;

template <typename Root, typename Read>
Status DecodeRoot(std::string_view bytes, Read&& read) {
  capnp_codec::DecodeLimits limits;
  limits.max_bytes = kMaxWitnessMessageBytes;
  return capnp_codec::Decode<Root>("witness message", bytes, limits, std::forward<Read>(read));
}

}  // namespace

WitnessLease::WitnessLease(Options options, uint64_t boot_id, WitnessClock::time_point boot_time)
    : options_(options), boot_id_(boot_id), hold_end_(boot_time + options.startup_hold) {
  PBX_CHECK(ValidateOptions(options_).ok());
}

Status WitnessLease::ValidateOptions(const Options& options) {
  if (options.max_lease < kMinWitnessLease || options.max_lease > kMaxWitnessLease) {
    return Status::InvalidArgument(fmt::format("max lease {} ms is outside [{}, {}]",
                                               options.max_lease.count(), kMinWitnessLease.count(),
                                               kMaxWitnessLease.count()));
  }
  if (options.startup_hold.count() < 0) {
    return Status::InvalidArgument("start-up hold must not be negative");
  }
  if (options.max_clusters == 0) return Status::InvalidArgument("max clusters must be positive");
  return Status::Ok();
}

LeaseReply WitnessLease::Decide(const LeaseRequest& request, WitnessClock::time_point now,
                                LeaseEvent* event) {
  LeaseEvent ignored;
  LeaseEvent& ev = event != nullptr ? *event : ignored;
  ev = LeaseEvent{};
  ev.cluster_id = request.cluster_id;
  ev.node_name = request.node_name;
  ev.epoch = request.epoch;
  ev.lease_ms = request.lease_ms;

  LeaseReply reply;
  reply.witness_boot_id = boot_id_;
  if (std::string error = Validate(request, options_.max_lease); !error.empty()) {
    ev.kind = LeaseEvent::Kind::kBadRequest;
    ev.detail = error;
    reply.error = std::move(error);
    return reply;
  }

  auto it = clusters_.find(request.cluster_id);
  const Entry no_entry;
  const Entry& current = it != clusters_.end() ? it->second : no_entry;
  const bool held = Holds(current, now);
  const bool requester_holds = held && current.holder == request.node_name;
  if (held) {
    reply.holder = current.holder;
    reply.remaining_ms = RemainingMs(current.expires, now);
  }

  if (request.release) {
    if (requester_holds) {
      it->second.expires = now;
      it->second.expiry_reported = true;  // logged as a release, not as an expiry
      ev.kind = LeaseEvent::Kind::kRelease;
      reply.holder.clear();
      reply.remaining_ms = 0;
    }
    return reply;
  }

  if (held && !requester_holds) {
    ev.kind = LeaseEvent::Kind::kRefuse;
    ev.previous_holder = current.holder;
    ev.detail = "held by another node";
    return reply;
  }

  const bool presents_old_lease = request.held_boot_id != 0 && request.held_boot_id != boot_id_;
  if (!requester_holds && !current.granted_since_boot && now < hold_end_ && !presents_old_lease) {
    ev.kind = LeaseEvent::Kind::kRefuse;
    ev.detail = "start-up hold";
    reply.remaining_ms = RemainingMs(hold_end_, now);
    return reply;
  }

  if (it == clusters_.end()) {
    if (clusters_.size() >= options_.max_clusters) EvictIdle(now);
    if (clusters_.size() >= options_.max_clusters) {
      ev.kind = LeaseEvent::Kind::kBadRequest;
      ev.detail = reply.error =
          fmt::format("witness already serves {} clusters", options_.max_clusters);
      return reply;
    }
    it = clusters_.emplace(request.cluster_id, Entry{}).first;
  }
  Entry& entry = it->second;
  if (requester_holds) {
    ev.kind = LeaseEvent::Kind::kRenew;
  } else if (entry.holder.empty() || entry.holder == request.node_name) {
    ev.kind = LeaseEvent::Kind::kGrant;
  } else {
    ev.kind = LeaseEvent::Kind::kHandover;
    ev.previous_holder = entry.holder;
  }
  entry.holder = request.node_name;
  entry.epoch = request.epoch;
  entry.expires = now + milliseconds(request.lease_ms);
  entry.expiry_reported = false;
  entry.granted_since_boot = true;
  ev.lease_end = entry.expires;

  reply.granted = true;
  reply.holder = entry.holder;
  reply.remaining_ms = request.lease_ms;
  return reply;
}

std::vector<LeaseEvent> WitnessLease::Expire(WitnessClock::time_point now) {
  std::vector<LeaseEvent> expired;
  for (auto& [cluster_id, entry] : clusters_) {
    if (entry.expiry_reported || entry.holder.empty() || now < entry.expires) continue;
    entry.expiry_reported = true;
    LeaseEvent ev;
    ev.kind = LeaseEvent::Kind::kExpire;
    ev.cluster_id = cluster_id;
    ev.node_name = entry.holder;
    ev.epoch = entry.epoch;
    ev.lease_end = entry.expires;
    expired.push_back(std::move(ev));
  }
  return expired;
}

void WitnessLease::EvictIdle(WitnessClock::time_point now) {
  // Forgetting an idle cluster only loses its last holder's name (and, during the start-up
  // hold, makes the hold apply to it again): never a running lease.
  std::erase_if(clusters_, [&](const auto& kv) { return !Holds(kv.second, now); });
}

std::string EncodeLeaseRequest(const LeaseRequest& request) {
  capnp::MallocMessageBuilder message;
  wire::LeaseRequest::Builder b = message.initRoot<wire::LeaseRequest>();
  b.setVersion(kWitnessProtocolVersion);
  b.setClusterId(AsText(request.cluster_id));
  b.setNodeName(AsText(request.node_name));
  b.setEpoch(request.epoch);
  b.setLeaseMs(request.lease_ms);
  b.setRelease(request.release);
  b.setHeldBootId(request.held_boot_id);
  return ToBytes(message);
}

Result<LeaseRequest> DecodeLeaseRequest(std::string_view bytes) {
  LeaseRequest request;
  PBX_TRY(DecodeRoot<wire::LeaseRequest>(bytes, [&](wire::LeaseRequest::Reader r) {
    if (r.getVersion() == 0) return Status::Corruption("witness request without a version");
    request.cluster_id = FromText(r.getClusterId());
    request.node_name = FromText(r.getNodeName());
    request.epoch = r.getEpoch();
    request.lease_ms = r.getLeaseMs();
    request.release = r.getRelease();
    request.held_boot_id = r.getHeldBootId();
    return Status::Ok();
  }));
  return request;
}

std::string EncodeLeaseReply(const LeaseReply& reply) {
  capnp::MallocMessageBuilder message;
  wire::LeaseReply::Builder b = message.initRoot<wire::LeaseReply>();
  b.setVersion(kWitnessProtocolVersion);
  b.setGranted(reply.granted);
  b.setHolder(AsText(reply.holder));
  b.setRemainingMs(reply.remaining_ms);
  b.setWitnessBootId(reply.witness_boot_id);
  b.setError(AsText(reply.error));
  return ToBytes(message);
}

Result<LeaseReply> DecodeLeaseReply(std::string_view bytes) {
  LeaseReply reply;
  PBX_TRY(DecodeRoot<wire::LeaseReply>(bytes, [&](wire::LeaseReply::Reader r) {
    if (r.getVersion() == 0) return Status::Corruption("witness reply without a version");
    reply.granted = r.getGranted();
    reply.holder = FromText(r.getHolder());
    reply.remaining_ms = r.getRemainingMs();
    reply.witness_boot_id = r.getWitnessBootId();
    reply.error = FromText(r.getError());
    return Status::Ok();
  }));
  return reply;
}

}  // namespace pbx::cluster
