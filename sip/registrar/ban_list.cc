#include "sip/registrar/ban_list.h"

#include <algorithm>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace pbx::sip {

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  if (text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  std::string s(text);
  IpAddress ip;
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
  if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) != 1) return std::nullopt;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(ip.bytes.data(), kMapped, 12) == 0) {
    std::memmove(ip.bytes.data(), ip.bytes.data() + 12, 4);
    std::fill(ip.bytes.begin() + 4, ip.bytes.end(), 0);
    return ip;
  }
  ip.v6 = true;
  return ip;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const void* sockaddr) {
  const auto* sa = static_cast<const struct sockaddr*>(sockaddr);
  char buf[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    IpAddress ip;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    return ip;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* a6 = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (inet_ntop(AF_INET6, a6, buf, sizeof(buf)) == nullptr) return std::nullopt;
    return Parse(buf);
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf)) == nullptr) return "?";
  return buf;
}

bool IpAddress::IsPrivate() const {
  if (v6) return (bytes[0] & 0xfe) == 0xfc;
  return bytes[0] == 10 || (bytes[0] == 172 && (bytes[1] & 0xf0) == 16) ||
         (bytes[0] == 192 && bytes[1] == 168);
}

bool IpAddress::IsLoopback() const {
  if (!v6) return bytes[0] == 127;
  for (int i = 0; i < 15; ++i) {
    if (bytes[i] != 0) return false;
  }
  return bytes[15] == 1;
}

std::optional<IpNetwork> IpNetwork::Parse(std::string_view text) {
  size_t slash = text.find('/');
  std::optional<IpAddress> ip = IpAddress::Parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  int max = ip->v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    prefix = 0;
    for (char ch : p) {
      if (ch < '0' || ch > '9') return std::nullopt;
      prefix = prefix * 10 + (ch - '0');
    }
    if (prefix > max) return std::nullopt;
  }
  return IpNetwork{*ip, prefix};
}

bool IpNetwork::Contains(const IpAddress& ip) const {
  if (ip.v6 != base.v6) return false;
  int full = prefix / 8;
  if (std::memcmp(ip.bytes.data(), base.bytes.data(), full) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (base.bytes[full] & mask);
}

Result<std::vector<IpNetwork>> ParseNetworks(const std::vector<std::string>& entries) {
  std::vector<IpNetwork> out;
  for (const std::string& e : entries) {
    std::optional<IpNetwork> n = IpNetwork::Parse(e);
    if (!n) return Status::InvalidArgument("'" + e + "' is not an IP address or network");
    out.push_back(*n);
  }
  return out;
}

namespace {
bool InAny(const std::vector<IpNetwork>& nets, const IpAddress& ip) {
  return std::any_of(nets.begin(), nets.end(), [&](const IpNetwork& n) { return n.Contains(ip); });
}
}  // namespace

bool BanList::Trusted(const IpAddress& ip) const {
  return InAny(policy_.allow, ip) || (policy_.trust_private && ip.IsPrivate());
}

bool BanList::Admit(const IpAddress& ip, const std::string& ip_text, int64_t now) const {
  if (!policy_.deny.empty() && InAny(policy_.deny, ip)) return false;
  if (bans_.empty()) return true;
  auto it = bans_.find(ip_text);
  if (it == bans_.end() || it->second.until_unix <= now) return true;
  return InAny(policy_.allow, ip);
}

std::optional<store::Ban> BanList::RecordFailure(const IpAddress& ip, const std::string& ip_text,
                                                 int64_t now, std::string_view reason) {
  if (!policy_.enabled || policy_.max_retries == 0 || Trusted(ip)) return std::nullopt;
  std::deque<int64_t>& times = failures_[ip_text];
  times.push_back(now);
  while (!times.empty() && times.front() <= now - static_cast<int64_t>(policy_.find_time)) {
    times.pop_front();
  }
  if (times.size() < policy_.max_retries) return std::nullopt;
  store::Ban ban;
  ban.ip = ip_text;
  ban.reason = std::string(reason);
  ban.banned_unix = now;
  ban.until_unix = now + policy_.ban_time;
  ban.failures = static_cast<uint32_t>(times.size());
  failures_.erase(ip_text);
  bans_[ip_text] = ban;
  return ban;
}

void BanList::Apply(const store::Ban& ban) { bans_[ban.ip] = ban; }
void BanList::Lift(const std::string& ip_text) {
  bans_.erase(ip_text);
  failures_.erase(ip_text);
}
void BanList::Clear() {
  bans_.clear();
  failures_.clear();
}

std::vector<std::string> BanList::Expired(int64_t now) const {
  std::vector<std::string> out;
  for (const auto& [ip, ban] : bans_) {
    if (ban.until_unix <= now) out.push_back(ip);
  }
  return out;
}

void BanList::Prune(int64_t now) {
  for (auto it = failures_.begin(); it != failures_.end();) {
    std::deque<int64_t>& t = it->second;
    while (!t.empty() && t.front() <= now - static_cast<int64_t>(policy_.find_time)) t.pop_front();
    it = t.empty() ? failures_.erase(it) : std::next(it);
  }
}

ExpiryDecision DecideExpiry(std::optional<uint32_t> requested, uint32_t ext_default, uint32_t min,
                            uint32_t max) {
  using Kind = ExpiryDecision::Kind;
  if (requested && *requested == 0) return {Kind::kRemove, 0};
  uint32_t want = requested ? *requested : ext_default;
  if (want < min) {
    // Only a request the client made itself is refused; our own default is lifted.
    if (requested) return {Kind::kTooBrief, min};
    want = min;
  }
  return {Kind::kGrant, std::min(want, std::max(max, min))};
}

uint32_t RandomizeExpiry(uint32_t granted, uint64_t random) {
  uint32_t span = granted / 10;
  uint32_t cut = span == 0 ? 0 : static_cast<uint32_t>(random % (span + 1));
  return std::max<uint32_t>(1, granted - cut);
}

}  // namespace pbx::sip
