#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.h"
#include "tests/system/netns.h"
#include "tests/system/pbxd_netns.h"

// An active/standby pair in network namespaces on one bridge (root only): node A, node B
// and the witness, plus the hosts a test adds (phones, a client, a carrier). With subnet
// "10.214.0":
//
//   <prefix><pid>_a  node A (pbx-a)  eth0 10.214.0.1/24  --+
//   <prefix><pid>_b  node B (pbx-b)  eth0 10.214.0.2/24  --+-- br0 in <prefix><pid>_sw
//   <prefix><pid>_w  pbx-witness     eth0 10.214.0.4/24  --+
//   <prefix><pid>_X  AddHost("X", n) eth0 10.214.0.n/24  --+
//
// The active carries the VIP <subnet>.100/24 on its eth0. Used by the system tests of the
// pair and by bench/failover_netns_bench.cc. PBX_WITNESS_PATH comes from the build.
namespace pbx::test {

struct PairLabOptions {
  std::string prefix;  // namespaces "<prefix><pid>_<role>"
  std::string subnet;  // "10.214.0": the first three octets of the /24
  // The lab runs baresip phones: Create() skips without baresip (CreatePhoneLab).
  bool phones = false;
  bool demo_extensions = false;
  // 0: each node's API on an ephemeral port of its loopback (pbxctl finds it); else on
  // 0.0.0.0:api_port, reachable at the node's address and at the VIP.
  int api_port = 0;
};

class PairLab {
 public:
  explicit PairLab(PairLabOptions options);
  // Stops the nodes (SIGCONT first, for a stopped one) and the witness, then removes the
  // namespaces: every exit path of a test or bench leaves nothing behind.
  ~PairLab();
  PairLab(const PairLab&) = delete;
  PairLab& operator=(const PairLab&) = delete;

  // Creates the namespaces of A, B and the witness and starts the witness. "" on success,
  // else why the caller skips (no root, no baresip) or what failed.
  std::string Create();
  // Adds host `role` at <subnet>.`octet` (MAC 02:<subnet's 2nd octet>:00:00:00:<octet>).
  // "" or what failed.
  std::string AddHost(const std::string& role, int octet);

  std::string Addr(int octet) const { return options_.subnet + "." + std::to_string(octet); }
  std::string Mac(int octet) const;
  std::string vip() const { return Addr(100); }
  std::string ns(const std::string& role) const { return net_.ns(role); }
  const TempDir& dir() const { return dir_; }

  // Node 0 is A, node 1 is B.
  std::string name(int i) const { return i == 0 ? "pbx-a" : "pbx-b"; }
  std::string host(int i) const { return i == 0 ? "a" : "b"; }
  std::string addr(int i) const { return Addr(i + 1); }
  std::string mac(int i) const { return Mac(i + 1); }
  // The running pbxd of node i; null before Start or after Stop.
  NetnsPbxd* node(int i) const { return nodes_[i].get(); }

  // Starts (or restarts, with its data) node i and waits for its ready.json. "" or what
  // failed, with its log.
  std::string Start(int i);
  // SIGCONT (for a stopped node), SIGTERM, SIGKILL after a grace period.
  void Stop(int i);
  // Starts A, waits for it to be active, then B, waits for it to be standby. "" or what
  // failed.
  std::string StartPair();
  // `pbxctl status` of node i: its role, "" when it does not answer.
  std::string Role(int i) const;
  bool WaitRole(int i, const std::string& role,
                std::chrono::milliseconds timeout = std::chrono::seconds(15)) const;
  // Whether node i's eth0 carries the VIP.
  bool HoldsVip(int i) const;

 private:
  PairLabOptions options_;
  TempDir dir_;
  std::unique_ptr<TempDir> node_dirs_[2];
  NetLab net_;
  // Destroyed before net_: processes go before their namespaces.
  std::unique_ptr<Process> witness_;
  std::unique_ptr<NetnsPbxd> nodes_[2];
};

// The audio gap as a phone sees it: the longest pause between two RTP packets from `vip`
// arriving in namespace `ns` (a packet socket; a phone's recording cannot show it, since
// baresip records what it decodes and decodes only what arrives). RTP: UDP from an even
// port >= 10000.
class RtpGapMeter {
 public:
  RtpGapMeter(const std::string& ns, const std::string& vip);
  ~RtpGapMeter() { Stop(); }
  RtpGapMeter(const RtpGapMeter&) = delete;
  RtpGapMeter& operator=(const RtpGapMeter&) = delete;
  void Stop();
  // Starts a new measurement; the first gap it counts runs from the last packet before.
  void Reset();
  // The longest pause, including the one still open since the last packet (until Stop),
  // so that audio which never resumes shows as a gap.
  double max_gap_ms() const;
  uint64_t packets() const;

 private:
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  bool seen_ = false;     // a packet arrived (guarded by mu_, as the four below)
  uint64_t packets_ = 0;  // since the last Reset
  double max_gap_ms_ = 0;
  std::chrono::steady_clock::time_point last_;
  std::chrono::steady_clock::time_point stopped_;  // the end of the open gap, once stopped
  std::thread thread_;
};

}  // namespace pbx::test
