#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "node/core/status.h"

namespace pbx::cluster {

struct VirtualIpConfig {
  std::string interface;  // "eth0"
  std::string address;    // "192.0.2.10" or "2001:db8::10", without the prefix length
  int prefix_len = -1;    // 0..32 for IPv4, 0..128 for IPv6

  // Announcements (gratuitous ARP / unsolicited NA) after Acquire(): `burst_count` packets
  // `burst_spacing` apart, then one every `refresh_interval` while held. A peer ignores an
  // ARP update that arrives within its neighbour locktime (Linux: 1 s) of the previous one
  // unless it recognises it as gratuitous, so the burst must span more than that:
  // the defaults send at 0, 0.55 s and 1.1 s.
  int burst_count = 3;
  std::chrono::milliseconds burst_spacing{550};
  std::chrono::milliseconds refresh_interval{std::chrono::seconds(60)};

  // Whether the destructor removes the address. Off by default: an active node must not
  // drop the service address because an object went out of scope on some error path; the
  // daemon's shutdown path calls Release() explicitly.
  bool release_on_destroy = false;

  // Fills `address` and `prefix_len` from "192.0.2.10/24" or "2001:db8::10/64".
  Status SetCidr(std::string_view cidr);
  // "192.0.2.10/24"
  std::string Cidr() const;
};

// The service address of the pair, held by the active node: Acquire() adds it to the
// interface over rtnetlink and announces it (IPv4: gratuitous ARP requests over an AF_PACKET
// socket; IPv6: unsolicited neighbour advertisements with the override flag to ff02::1), so
// that hosts on the link update their neighbour caches at once instead of sending to the
// previous holder's MAC until their entry goes stale (measured: 37 s).
//
// Not thread-safe: Acquire(), Release(), Held() and the destructor are called from one thread
// (the loop thread). Acquire() blocks for two netlink round trips and one non-blocking send
// (measured 0.2-1 ms, a few ms at worst); the rest of the burst and the periodic refresh are sent
// by an announcer thread that this object owns, started by Acquire() and joined by Release() and
// the destructor. That thread touches only its own socket, the immutable config and an atomic
// counter; before each packet it checks that the kernel still has the address, so a VIP removed
// behind our back (by an operator or a fencing script) is never advertised.
//
// Needs CAP_NET_ADMIN (address) and CAP_NET_RAW (announcements) in the interface's network
// namespace. Requires an interface with a 6-byte (Ethernet) link-layer address.
// Deployment note: an IPv4 VIP in the node's own subnet is a secondary address. Should it ever
// be the primary one, removing it also removes the secondaries unless the interface has
// net.ipv4.conf.<if>.promote_secondaries=1.
class VirtualIp {
 public:
  // Returns InvalidArgument if the address, prefix length or timings are not valid. Does not
  // look at the interface: it may not exist yet.
  static Result<std::unique_ptr<VirtualIp>> Create(VirtualIpConfig config);

  ~VirtualIp();
  VirtualIp(const VirtualIp&) = delete;
  VirtualIp& operator=(const VirtualIp&) = delete;

  // Adds the address (already present is fine: NLM_F_REPLACE; IPv6 with IFA_F_NODAD so it is
  // usable at once instead of tentative during duplicate address detection), sends the first
  // announcement and starts the burst and the refresh. Calling it again restarts the burst.
  // Errors name the interface and the address: NotFound (no such interface), PermissionDenied
  // (EPERM), InvalidArgument (not an Ethernet interface), Io (other kernel errors). A failed
  // announcement is logged, not returned: the address is held and the next packet retries.
  // A failed Acquire() leaves nothing announcing (the address may remain from before).
  Status Acquire();

  // Stops announcing and removes the address; an absent address or interface is fine.
  Status Release();

  // Whether the kernel has the address on the interface now, with any prefix length and not
  // tentative (not whether Acquire() was called).
  bool Held() const;

  // The interface's MAC address as "02:13:00:00:00:0a", read from the kernel (for status output).
  Result<std::string> InterfaceMac() const;

  // Announcements sent since construction (a counter for `pbxctl stats` and tests).
  uint64_t announcements_sent() const { return sent_.load(std::memory_order_relaxed); }
  const VirtualIpConfig& config() const { return config_; }

 private:
  class Announcer;

  VirtualIp(VirtualIpConfig config, int family, const std::array<uint8_t, 16>& addr);
  void StopAnnouncer();
  // Announcer thread: the rest of the burst, then the refresh, until StopAnnouncer().
  void AnnounceLoop();
  // Sends one announcement if the kernel still has the address. Announcer thread only.
  void AnnounceIfHeld();

  const VirtualIpConfig config_;
  const int family_;                    // AF_INET or AF_INET6
  const std::array<uint8_t, 16> addr_;  // network byte order; 4 bytes used for IPv4
  const std::string what_;              // "vip 10.0.0.1/24 on eth0", prefix of every message
  std::atomic<uint64_t> sent_{0};

  // Announcer thread state.
  std::unique_ptr<Announcer> announcer_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
};

}  // namespace pbx::cluster
