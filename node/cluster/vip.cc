#include "node/cluster/vip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <charconv>
#include <exception>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/if_ether.h>
#include <netinet/in.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include "node/core/log.h"

namespace pbx::cluster {
namespace {

constexpr size_t kMacLen = 6;
using Mac = std::array<uint8_t, kMacLen>;

// RAII for the C handles of this file.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct NlSockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }  // also closes it
};
struct NlAddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct RtnlAddrPut {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct RtnlLinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct NlCacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using NlSock = std::unique_ptr<nl_sock, NlSockFree>;
using NlAddr = std::unique_ptr<nl_addr, NlAddrPut>;
using RtnlAddr = std::unique_ptr<rtnl_addr, RtnlAddrPut>;
using RtnlLink = std::unique_ptr<rtnl_link, RtnlLinkPut>;
using NlCache = std::unique_ptr<nl_cache, NlCacheFree>;

size_t AddrLen(int family) { return family == AF_INET ? 4 : 16; }

std::string FormatMac(const Mac& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

// `err` is a negative libnl error code.
Status NlStatus(int err, std::string_view what, std::string_view action) {
  std::string msg = fmt::format("{}: {}: {}", what, action, nl_geterror(err));
  switch (-err) {
    case NLE_PERM:
    case NLE_NOACCESS:
      return Status::PermissionDenied(std::move(msg) + " (needs CAP_NET_ADMIN)");
    case NLE_NODEV:
    case NLE_OBJ_NOTFOUND:
      return Status::NotFound(std::move(msg));
    case NLE_INVAL:
    case NLE_RANGE:
    case NLE_AF_NOSUPPORT:
      return Status::InvalidArgument(std::move(msg));
    default:
      return Status::Io(std::move(msg));
  }
}

Status ErrnoStatus(int err, std::string_view what, std::string_view action) {
  std::string msg = fmt::format("{}: {}: {}", what, action, strerror(err));
  if (err == EPERM || err == EACCES) {
    return Status::PermissionDenied(std::move(msg) + " (needs CAP_NET_RAW)");
  }
  if (err == ENODEV || err == ENXIO) return Status::NotFound(std::move(msg));
  return Status::Io(std::move(msg));
}

Result<NlSock> ConnectRoute(std::string_view what) {
  NlSock sock(nl_socket_alloc());
  if (!sock) return Status::Internal(fmt::format("{}: nl_socket_alloc failed", what));
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return NlStatus(err, what, "netlink connect");
  }
  return sock;
}

struct LinkInfo {
  int ifindex = 0;
  bool has_mac = false;  // a 6-byte link-layer address, i.e. Ethernet or alike
  Mac mac{};
};

Result<LinkInfo> LookupLink(nl_sock* sock, const std::string& name, std::string_view what) {
  rtnl_link* raw = nullptr;
  int err = rtnl_link_get_kernel(sock, 0, name.c_str(), &raw);
  RtnlLink link(raw);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) {
    return Status::NotFound(fmt::format("{}: no network interface named '{}'", what, name));
  }
  if (err < 0) return NlStatus(err, what, "look up interface");
  LinkInfo info;
  info.ifindex = rtnl_link_get_ifindex(link.get());
  nl_addr* ll = rtnl_link_get_addr(link.get());
  if (ll != nullptr && nl_addr_get_len(ll) == kMacLen) {
    info.has_mac = true;
    memcpy(info.mac.data(), nl_addr_get_binary_addr(ll), kMacLen);
  }
  return info;
}

Result<NlAddr> MakeNlAddr(int family, const std::array<uint8_t, 16>& bytes, int prefix_len,
                          std::string_view what) {
  NlAddr a(nl_addr_build(family, bytes.data(), AddrLen(family)));
  if (!a) return Status::Internal(fmt::format("{}: nl_addr_build failed", what));
  nl_addr_set_prefixlen(a.get(), prefix_len);
  return a;
}

// Calls `fn(rtnl_addr*)` for every usable address equal to the VIP on `ifindex`, any prefix
// length. Tentative and DAD-failed addresses do not count: the kernel does not accept packets
// for them.
template <typename Fn>
Status ForEachMatchingAddress(nl_sock* sock, int ifindex, int family,
                              const std::array<uint8_t, 16>& bytes, std::string_view what, Fn fn) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock, &raw); err < 0) {
    return NlStatus(err, what, "list addresses");
  }
  NlCache cache(raw);
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
       obj = nl_cache_get_next(obj)) {
    auto* a = reinterpret_cast<rtnl_addr*>(obj);
    if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != family) continue;
    if (rtnl_addr_get_flags(a) & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (local == nullptr || nl_addr_get_len(local) != AddrLen(family) ||
        memcmp(nl_addr_get_binary_addr(local), bytes.data(), AddrLen(family)) != 0) {
      continue;
    }
    PBX_TRY(fn(a));
  }
  return Status::Ok();
}

Result<bool> AddressOnLink(nl_sock* sock, int ifindex, int family,
                           const std::array<uint8_t, 16>& bytes, std::string_view what) {
  bool found = false;
  PBX_TRY(ForEachMatchingAddress(sock, ifindex, family, bytes, what, [&](rtnl_addr*) {
    found = true;
    return Status::Ok();
  }));
  return found;
}

}  // namespace

// One prebuilt announcement packet and the socket that sends it. Opened by Acquire() before
// the address is added, so that a missing CAP_NET_RAW fails before anything changes.
class VirtualIp::Announcer {
 public:
  static Result<std::unique_ptr<Announcer>> Open(int family, const std::array<uint8_t, 16>& addr,
                                                 const LinkInfo& link, std::string_view what) {
    auto a = std::unique_ptr<Announcer>(new Announcer());
    a->ifindex_ = link.ifindex;
    if (family == AF_INET) {
      PBX_TRY(a->OpenArp(addr, link, what));
    } else {
      PBX_TRY(a->OpenNa(addr, link, what));
    }
    return a;
  }

  int ifindex() const { return ifindex_; }

  // Never blocks (MSG_DONTWAIT): Acquire() calls it on the loop thread.
  Status Send(std::string_view what) {
    ssize_t n = sendmsg(fd_.get(), &msg_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) return ErrnoStatus(errno, what, "send announcement");
    return Status::Ok();
  }

 private:
  Announcer() = default;

  // Gratuitous ARP as RFC 5227 "ARP announcement": a broadcast request with sender IP = target
  // IP = VIP. Linux peers treat it as gratuitous (override even within locktime) and update an
  // existing entry; a request, unlike a reply, is also accepted by hosts that ignore
  // unsolicited replies.
  Status OpenArp(const std::array<uint8_t, 16>& addr, const LinkInfo& link, std::string_view what) {
    // Protocol 0: this socket only sends, so the kernel queues no received frames on it.
    fd_ = UniqueFd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (fd_.get() < 0) return ErrnoStatus(errno, what, "open packet socket");
    ether_arp arp{};
    arp.arp_hrd = htons(ARPHRD_ETHER);
    arp.arp_pro = htons(ETHERTYPE_IP);
    arp.arp_hln = kMacLen;
    arp.arp_pln = 4;
    arp.arp_op = htons(ARPOP_REQUEST);
    memcpy(arp.arp_sha, link.mac.data(), kMacLen);
    memcpy(arp.arp_spa, addr.data(), 4);
    memcpy(arp.arp_tpa, addr.data(), 4);  // arp_tha stays zero (RFC 5227)
    // Padded to the 46-byte minimum Ethernet payload; real NICs would pad anyway.
    packet_.assign(ETH_ZLEN - ETH_HLEN, 0);
    memcpy(packet_.data(), &arp, sizeof(arp));

    auto* ll = reinterpret_cast<sockaddr_ll*>(&dest_);
    ll->sll_family = AF_PACKET;
    ll->sll_protocol = htons(ETH_P_ARP);
    ll->sll_ifindex = link.ifindex;
    ll->sll_halen = kMacLen;
    memset(ll->sll_addr, 0xff, kMacLen);
    FillMsg(sizeof(sockaddr_ll));
    return Status::Ok();
  }

  // Unsolicited neighbour advertisement (RFC 4861 §7.2.6): override flag, target = VIP, target
  // link-layer address option, to all-nodes, hop limit 255 (receivers drop anything else).
  // The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket.
  Status OpenNa(const std::array<uint8_t, 16>& addr, const LinkInfo& link, std::string_view what) {
    fd_ = UniqueFd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
    if (fd_.get() < 0) return ErrnoStatus(errno, what, "open ICMPv6 socket");
    icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);  // send only: nothing queues up unread
    int hops = 255;
    int loop = 0;
    int ifindex = link.ifindex;
    if (setsockopt(fd_.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter)) < 0 ||
        setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
        setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof(loop)) < 0 ||
        setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0) {
      return ErrnoStatus(errno, what, "set ICMPv6 socket options");
    }
    nd_neighbor_advert na{};
    na.nd_na_type = ND_NEIGHBOR_ADVERT;
    na.nd_na_code = 0;
    na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
    memcpy(&na.nd_na_target, addr.data(), 16);
    nd_opt_hdr opt{};
    opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
    opt.nd_opt_len = 1;  // in units of 8 bytes: header + MAC
    packet_.resize(sizeof(na) + sizeof(opt) + kMacLen);
    memcpy(packet_.data(), &na, sizeof(na));
    memcpy(packet_.data() + sizeof(na), &opt, sizeof(opt));
    memcpy(packet_.data() + sizeof(na) + sizeof(opt), link.mac.data(), kMacLen);

    auto* dst = reinterpret_cast<sockaddr_in6*>(&dest_);
    dst->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "ff02::1", &dst->sin6_addr);
    dst->sin6_scope_id = link.ifindex;
    FillMsg(sizeof(sockaddr_in6));

    // Source = the VIP itself, chosen per packet: the address does not exist yet when the
    // socket is opened, and the link-local address may still be tentative.
    in6_pktinfo info{};
    memcpy(&info.ipi6_addr, addr.data(), 16);
    info.ipi6_ifindex = link.ifindex;
    cmsg_buf_.assign(CMSG_SPACE(sizeof(info)), 0);
    msg_.msg_control = cmsg_buf_.data();
    msg_.msg_controllen = cmsg_buf_.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg_);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(info));
    memcpy(CMSG_DATA(c), &info, sizeof(info));
    return Status::Ok();
  }

  void FillMsg(socklen_t dest_len) {
    iov_.iov_base = packet_.data();
    iov_.iov_len = packet_.size();
    msg_.msg_name = &dest_;
    msg_.msg_namelen = dest_len;
    msg_.msg_iov = &iov_;
    msg_.msg_iovlen = 1;
  }

  int ifindex_ = 0;
  UniqueFd fd_;
  std::vector<uint8_t> packet_;
  std::vector<uint8_t> cmsg_buf_;
  sockaddr_storage dest_{};
  iovec iov_{};
  msghdr msg_{};
};

Status VirtualIpConfig::SetCidr(std::string_view cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("'{}': expected ADDRESS/PREFIXLEN", cidr));
  }
  int len = -1;
  std::string_view len_text = cidr.substr(slash + 1);
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc() || end != len_text.data() + len_text.size()) {
    return Status::InvalidArgument(fmt::format("'{}': prefix length is not a number", cidr));
  }
  address = std::string(cidr.substr(0, slash));
  prefix_len = len;
  return Status::Ok();
}

std::string VirtualIpConfig::Cidr() const { return fmt::format("{}/{}", address, prefix_len); }

Result<std::unique_ptr<VirtualIp>> VirtualIp::Create(VirtualIpConfig config) {
  std::string what = fmt::format("vip {} on {}", config.Cidr(), config.interface);
  if (config.interface.empty()) {
    return Status::InvalidArgument(fmt::format("{}: no interface given", what));
  }
  std::array<uint8_t, 16> addr{};
  int family = AF_INET;
  if (inet_pton(AF_INET, config.address.c_str(), addr.data()) != 1) {
    family = AF_INET6;
    if (inet_pton(AF_INET6, config.address.c_str(), addr.data()) != 1) {
      return Status::InvalidArgument(fmt::format("{}: not an IPv4 or IPv6 address", what));
    }
  }
  int max_len = family == AF_INET ? 32 : 128;
  if (config.prefix_len < 0 || config.prefix_len > max_len) {
    return Status::InvalidArgument(
        fmt::format("{}: prefix length must be between 0 and {}", what, max_len));
  }
  if (config.burst_count < 1 || config.burst_spacing.count() <= 0 ||
      config.refresh_interval.count() <= 0) {
    return Status::InvalidArgument(fmt::format(
        "{}: burst_count must be >= 1, burst_spacing and refresh_interval positive", what));
  }
  return std::unique_ptr<VirtualIp>(new VirtualIp(std::move(config), family, addr));
}

VirtualIp::VirtualIp(VirtualIpConfig config, int family, const std::array<uint8_t, 16>& addr)
    : config_(std::move(config)),
      family_(family),
      addr_(addr),
      what_(fmt::format("vip {} on {}", config_.Cidr(), config_.interface)) {}

VirtualIp::~VirtualIp() {
  StopAnnouncer();
  if (config_.release_on_destroy) {
    if (Status s = Release(); !s.ok()) {
      PBX_LOG(kWarn, "vip", "release on destroy failed: {}", s.ToString());
    }
  }
}

Status VirtualIp::Acquire() {
  StopAnnouncer();
  PBX_ASSIGN_OR_RETURN(NlSock sock, ConnectRoute(what_));
  PBX_ASSIGN_OR_RETURN(LinkInfo link, LookupLink(sock.get(), config_.interface, what_));
  if (!link.has_mac) {
    return Status::InvalidArgument(
        fmt::format("{}: interface has no Ethernet address to announce from", what_));
  }
  PBX_ASSIGN_OR_RETURN(std::unique_ptr<Announcer> announcer,
                       Announcer::Open(family_, addr_, link, what_));

  PBX_ASSIGN_OR_RETURN(NlAddr local, MakeNlAddr(family_, addr_, config_.prefix_len, what_));
  RtnlAddr req(rtnl_addr_alloc());
  if (!req) return Status::Internal(fmt::format("{}: rtnl_addr_alloc failed", what_));
  rtnl_addr_set_ifindex(req.get(), link.ifindex);
  if (int err = rtnl_addr_set_local(req.get(), local.get()); err < 0) {
    return NlStatus(err, what_, "set local address");
  }
  rtnl_addr_set_prefixlen(req.get(), config_.prefix_len);
  // Without NODAD an IPv6 address is tentative for about a second of duplicate address
  // detection, and DAD would even fail while the old active still answers for it.
  if (family_ == AF_INET6) rtnl_addr_set_flags(req.get(), IFA_F_NODAD);
  if (int err = rtnl_addr_add(sock.get(), req.get(), NLM_F_REPLACE); err < 0) {
    return NlStatus(err, what_, "add address");
  }

  if (Status s = announcer->Send(what_); s.ok()) {
    sent_.fetch_add(1, std::memory_order_relaxed);
  } else {
    PBX_LOG(kWarn, "vip", "{}", s.ToString());
  }
  PBX_LOG(kInfo, "vip", "acquired {} mac={}", what_, FormatMac(link.mac));

  announcer_ = std::move(announcer);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] {
    try {
      AnnounceLoop();
    } catch (const std::exception& e) {
      PBX_LOG(kError, "vip", "announcer thread: uncaught exception: {}", e.what());
      abort();
    } catch (...) {
      PBX_LOG(kError, "vip", "announcer thread: uncaught exception");
      abort();
    }
  });
  return Status::Ok();
}

Status VirtualIp::Release() {
  StopAnnouncer();
  PBX_ASSIGN_OR_RETURN(NlSock sock, ConnectRoute(what_));
  Result<LinkInfo> link = LookupLink(sock.get(), config_.interface, what_);
  if (!link.ok() && link.status().IsNotFound()) {
    PBX_LOG(kInfo, "vip", "release {}: interface is gone, nothing to remove", what_);
    return Status::Ok();
  }
  if (!link.ok()) return link.status();
  // Deletes the address as the kernel has it, whatever its prefix length: after Release() this
  // node must not answer for the VIP. An absent address is the goal state, not an error.
  int removed = 0;
  PBX_TRY(
      ForEachMatchingAddress(sock.get(), link->ifindex, family_, addr_, what_, [&](rtnl_addr* a) {
        int err = rtnl_addr_delete(sock.get(), a, 0);
        if (err < 0 && err != -NLE_NOADDR) return NlStatus(err, what_, "remove address");
        ++removed;
        return Status::Ok();
      }));
  PBX_LOG(kInfo, "vip", "released {}{}", what_, removed == 0 ? " (was not present)" : "");
  return Status::Ok();
}

bool VirtualIp::Held() const {
  Result<NlSock> sock = ConnectRoute(what_);
  if (!sock.ok()) return false;
  Result<LinkInfo> link = LookupLink(sock->get(), config_.interface, what_);
  if (!link.ok()) return false;  // no interface, no address
  Result<bool> held = AddressOnLink(sock->get(), link->ifindex, family_, addr_, what_);
  if (!held.ok()) {
    PBX_LOG(kWarn, "vip", "{}", held.status().ToString());
    return false;
  }
  return *held;
}

Result<std::string> VirtualIp::InterfaceMac() const {
  PBX_ASSIGN_OR_RETURN(NlSock sock, ConnectRoute(what_));
  PBX_ASSIGN_OR_RETURN(LinkInfo link, LookupLink(sock.get(), config_.interface, what_));
  if (!link.has_mac) return Status::NotFound(fmt::format("{}: interface has no MAC", what_));
  return FormatMac(link.mac);
}

void VirtualIp::StopAnnouncer() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
  announcer_.reset();
}

void VirtualIp::AnnounceLoop() {
  using Clock = std::chrono::steady_clock;
  // Deadlines, not sleeps in a row, so that the time spent sending does not accumulate.
  Clock::time_point next = Clock::now();
  int burst_left = config_.burst_count - 1;  // Acquire() sent the first one
  while (true) {
    next += burst_left > 0 ? config_.burst_spacing : config_.refresh_interval;
    if (burst_left > 0) --burst_left;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_cv_.wait_until(lock, next, [this] { return stop_; })) return;
    }
    AnnounceIfHeld();
  }
}

void VirtualIp::AnnounceIfHeld() {
  Result<NlSock> sock = ConnectRoute(what_);
  if (!sock.ok()) {
    PBX_LOG(kWarn, "vip", "{}", sock.status().ToString());
    return;
  }
  Result<bool> held = AddressOnLink(sock->get(), announcer_->ifindex(), family_, addr_, what_);
  if (!held.ok()) {
    PBX_LOG(kWarn, "vip", "{}", held.status().ToString());
    return;
  }
  if (!*held) {
    PBX_LOG(kWarn, "vip", "{}: address was removed behind our back; not announcing it", what_);
    return;
  }
  if (Status s = announcer_->Send(what_); !s.ok()) {
    PBX_LOG(kWarn, "vip", "{}", s.ToString());
    return;
  }
  sent_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace pbx::cluster
