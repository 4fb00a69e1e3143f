#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "node/core/status.h"
#include "replication/store/repos.h"

// Intrusion protection (FEATURES.md 13.2-13.4): counting authentication failures per
// source, bans, and the allow and deny lists. A pure class with no clock and no I/O: the
// registrar feeds it the time, and persists the bans it returns.
// Not thread-safe: the signalling thread owns it.
namespace pbx::sip {

// An IPv4 or IPv6 address (IPv4-mapped IPv6 is folded to IPv4).
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4

  static std::optional<IpAddress> Parse(std::string_view text);
  static std::optional<IpAddress> FromSockaddr(const void* sockaddr);
  std::string ToString() const;
  bool IsPrivate() const;   // RFC 1918 (IPv4) or ULA fc00::/7 (IPv6)
  bool IsLoopback() const;  // 127/8 or ::1
  bool operator==(const IpAddress&) const = default;
};

// "10.0.0.0/8", "192.0.2.7", "fd00::/8".
struct IpNetwork {
  IpAddress base;
  int prefix = 0;
  static std::optional<IpNetwork> Parse(std::string_view text);
  bool Contains(const IpAddress& ip) const;
};

// InvalidArgument naming the first entry that is neither an address nor a network.
Result<std::vector<IpNetwork>> ParseNetworks(const std::vector<std::string>& entries);

class BanList {
 public:
  struct Policy {
    bool enabled = true;
    uint32_t max_retries = 5;
    uint32_t find_time = 60;
    uint32_t ban_time = 3600;
    bool trust_private = true;
    std::vector<IpNetwork> allow;
    std::vector<IpNetwork> deny;
  };
  // Bad list entries are the caller's to report (ParseNetworks); a policy is all valid.
  void SetPolicy(Policy policy) { policy_ = std::move(policy); }
  const Policy& policy() const { return policy_; }

  // Whether a request from `ip` gets any answer: no for the deny list and for a source
  // banned (and not on the allow list) at `now`.
  bool Admit(const IpAddress& ip, const std::string& ip_text, int64_t now) const;

  // One failure from `ip`. Returns the ban to persist when this failure reaches the
  // limit within the window; a trusted source is never banned.
  std::optional<store::Ban> RecordFailure(const IpAddress& ip, const std::string& ip_text,
                                          int64_t now, std::string_view reason);

  // The replicated ban list as the store holds it (change feed): add, replace, lift.
  void Apply(const store::Ban& ban);
  void Lift(const std::string& ip_text);
  void Clear();
  // Bans whose time is over at `now` (the caller deletes them from the store).
  std::vector<std::string> Expired(int64_t now) const;
  // Forgets failure windows older than find_time (bounded memory under a scan).
  void Prune(int64_t now);

  size_t ban_count() const { return bans_.size(); }

 private:
  bool Trusted(const IpAddress& ip) const;
  Policy policy_;
  std::unordered_map<std::string, store::Ban> bans_;
  std::unordered_map<std::string, std::deque<int64_t>> failures_;
};

// The expiry a REGISTER gets (RFC 3261 10.3 step 7).
struct ExpiryDecision {
  enum class Kind : uint8_t { kRemove, kTooBrief, kGrant } kind;
  uint32_t seconds;  // kTooBrief: the Min-Expires to send; kGrant: what to grant
};
// `requested`: the contact's expires parameter, else the Expires header, else none (the
// extension's default). A non-zero request below `min` is too brief; above `max` is cut.
ExpiryDecision DecideExpiry(std::optional<uint32_t> requested, uint32_t ext_default, uint32_t min,
                            uint32_t max);
// Spreads re-registration storms: `granted` minus 0-10 %, chosen by `random` (any value;
// taken modulo the range), never below 1.
uint32_t RandomizeExpiry(uint32_t granted, uint64_t random);

}  // namespace pbx::sip
