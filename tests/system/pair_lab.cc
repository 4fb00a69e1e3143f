#include "tests/system/pair_lab.h"

#include <signal.h>

#include <algorithm>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_ether.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include "tests/system/baresip.h"

namespace pbx::test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

PairLab::PairLab(PairLabOptions options) : options_(std::move(options)), net_(options_.prefix) {}

PairLab::~PairLab() {
  for (int i = 0; i < 2; ++i) Stop(i);
  witness_.reset();
}

std::string PairLab::Mac(int octet) const {
  std::string second = options_.subnet.substr(options_.subnet.find('.') + 1);
  second = second.substr(0, second.find('.'));
  return fmt::format("02:{:02x}:00:00:00:{:02x}", std::stoi(second) & 0xff, octet & 0xff);
}

std::string PairLab::AddHost(const std::string& role, int octet) {
  return net_.AddHost(role, Mac(octet), {Addr(octet) + "/24"});
}

std::string PairLab::Create() {
  if (options_.phones) {
    if (std::string why = CreatePhoneLab(net_); !why.empty()) return why;
  } else if (std::string why; !net_.Create(&why)) {
    return why;
  }
  for (auto [role, octet] : {std::pair{"a", 1}, std::pair{"b", 2}, std::pair{"w", 4}}) {
    if (std::string e = AddHost(role, octet); !e.empty()) return e;
  }
  witness_ = std::make_unique<Process>(
      std::vector<std::string>{"ip", "netns", "exec", ns("w"), PBX_WITNESS_PATH, "--listen",
                               "tcp://0.0.0.0:7500", "--startup-hold-ms", "0", "--run-dir",
                               dir_.Sub("witness")},
      dir_.Sub("witness.log"));
  for (auto& d : node_dirs_) d = std::make_unique<TempDir>();
  return "";
}

std::string PairLab::Start(int i) {
  Stop(i);
  std::string cluster = fmt::format(
      "[cluster]\nname = \"lab\"\nlisten = \"{}:7400\"\npeer = \"{}:7400\"\n"
      "vip = \"{}/24\"\ninterface = \"eth0\"\nwitness = \"{}:7500\"\n",
      addr(i), addr(1 - i), vip(), Addr(4));
  nodes_[i] = std::make_unique<NetnsPbxd>(ns(host(i)), *node_dirs_[i], name(i), addr(i),
                                          options_.demo_extensions, cluster, options_.api_port);
  if (!nodes_[i]->WaitReady()) return name(i) + " is not ready:\n" + nodes_[i]->Log();
  return "";
}

void PairLab::Stop(int i) {
  if (!nodes_[i]) return;
  nodes_[i]->process().Signal(SIGCONT);
  nodes_[i].reset();
}

std::string PairLab::StartPair() {
  for (int i = 0; i < 2; ++i) {
    if (std::string e = Start(i); !e.empty()) return e;
    const char* role = i == 0 ? "active" : "standby";
    if (!WaitRole(i, role)) {
      return fmt::format("{} is not {} but '{}':\n{}", name(i), role, Role(i), node(i)->Log());
    }
  }
  return "";
}

std::string PairLab::Role(int i) const {
  if (!nodes_[i]) return "";
  nlohmann::json s = nodes_[i]->PbxctlJson({"status"});
  return s.contains("role") && s["role"].is_string() ? s["role"].get<std::string>() : "";
}

bool PairLab::WaitRole(int i, const std::string& role, std::chrono::milliseconds timeout) const {
  return WaitFor([&] { return Role(i) == role; }, timeout);
}

bool PairLab::HoldsVip(int i) const {
  CommandResult r = Run({"ip", "-n", ns(host(i)), "-4", "addr", "show", "eth0"});
  return r.out.find(vip() + "/24") != std::string::npos;
}

RtpGapMeter::RtpGapMeter(const std::string& ns, const std::string& vip) {
  in_addr from{};
  inet_pton(AF_INET, vip.c_str(), &from);
  thread_ = std::thread([this, ns, from] {
    InNetns(ns, [this, from] {
      int fd = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
      if (fd < 0) return 0;
      timeval tv{0, 50'000};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      unsigned char buf[2048];
      while (!stop_) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n < 28) continue;
        const auto* ip = reinterpret_cast<const iphdr*>(buf);
        if (ip->protocol != IPPROTO_UDP || ip->saddr != from.s_addr) continue;
        const auto* udp = reinterpret_cast<const udphdr*>(buf + ip->ihl * 4);
        if (ntohs(udp->source) < 10000 || ntohs(udp->source) % 2) continue;  // RTP only
        Clock::time_point now = Clock::now();
        std::lock_guard<std::mutex> lock(mu_);
        if (seen_) {
          max_gap_ms_ =
              std::max(max_gap_ms_, std::chrono::duration<double, std::milli>(now - last_).count());
        }
        seen_ = true;
        ++packets_;
        last_ = now;
      }
      ::close(fd);
      return 0;
    });
  });
}

void RtpGapMeter::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = Clock::now();
}

void RtpGapMeter::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  packets_ = 0;
  max_gap_ms_ = 0;
}

double RtpGapMeter::max_gap_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!seen_) return max_gap_ms_;
  Clock::time_point end = stop_ ? stopped_ : Clock::now();
  return std::max(max_gap_ms_, std::chrono::duration<double, std::milli>(end - last_).count());
}

uint64_t RtpGapMeter::packets() const {
  std::lock_guard<std::mutex> lock(mu_);
  return packets_;
}

}  // namespace pbx::test
