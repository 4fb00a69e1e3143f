// pbx_vip_tool: drives VirtualIp from the command line, plus the UDP "who are you" responder
// and client that the system test runs inside network namespaces (ip netns exec).
//
//   pbx_vip_tool acquire IFACE ADDR/LEN [--hold-ms N] [--repeat N] [--release]
//                        [--burst N] [--spacing-ms N] [--refresh-ms N]
//       Acquire() (`--repeat` times on the same object), print "acquired mac=… acquire_us=…",
//       keep announcing for N ms (default 2000: the whole burst) or until SIGTERM/SIGINT, then
//       Release() if --release (the daemon's shutdown path) and print "sent=N". Without
//       --release the address stays, as after a crash.
//   pbx_vip_tool release IFACE ADDR/LEN
//   pbx_vip_tool held IFACE ADDR/LEN          exit 0 if held, 1 if not
//   pbx_vip_tool serve NAME ADDR PORT [--for-ms N]
//       Answers every datagram with NAME, bound to ADDR with IP_FREEBIND (as pbxd binds SIP
//       to the VIP before holding it). Exits after N ms (default 30000).
//   pbx_vip_tool ask ADDR PORT [--timeout-ms N]
//       Prints the reply and exits 0; exits 1 if none came within N ms (default 200).
// Exit code 2: usage or VirtualIp error (the Status on stderr).
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "node/cluster/vip.h"

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78  // linux/in6.h; not in glibc's netinet/in.h
#endif

namespace {

using pbx::cluster::VirtualIp;
using pbx::cluster::VirtualIpConfig;
using Clock = std::chrono::steady_clock;

int Usage() {
  fprintf(stderr,
          "usage: pbx_vip_tool acquire|release|held IFACE ADDR/LEN [options]\n"
          "       pbx_vip_tool serve NAME ADDR PORT [--for-ms N]\n"
          "       pbx_vip_tool ask ADDR PORT [--timeout-ms N]\n");
  return 2;
}

// Positional arguments and "--name value" options ("--release" takes no value).
struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opt;

  long Int(const std::string& name, long def) const {
    auto it = opt.find(name);
    return it == opt.end() ? def : strtol(it->second.c_str(), nullptr, 10);
  }
  bool Has(const std::string& name) const { return opt.count(name) > 0; }
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.pos.push_back(s);
    } else if (s == "--release") {
      a.opt[s] = "1";
    } else if (i + 1 < argc) {
      a.opt[s] = argv[++i];
    }
  }
  return a;
}

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

bool ParseSockAddr(const std::string& addr, int port, SockAddr* out) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
  if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof(*v6);
  } else {
    return false;
  }
  out->family = out->ss.ss_family;
  return true;
}

int VipCommand(const std::string& cmd, const Args& args) {
  if (args.pos.size() != 3) return Usage();
  VirtualIpConfig config;
  config.interface = args.pos[1];
  if (pbx::Status s = config.SetCidr(args.pos[2]); !s.ok()) {
    fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  config.burst_count = static_cast<int>(args.Int("--burst", config.burst_count));
  config.burst_spacing =
      std::chrono::milliseconds(args.Int("--spacing-ms", config.burst_spacing.count()));
  config.refresh_interval =
      std::chrono::milliseconds(args.Int("--refresh-ms", config.refresh_interval.count()));
  auto vip = VirtualIp::Create(config);
  if (!vip.ok()) {
    fprintf(stderr, "%s\n", vip.status().ToString().c_str());
    return 2;
  }

  if (cmd == "held") return (*vip)->Held() ? 0 : 1;
  if (cmd == "release") {
    pbx::Status s = (*vip)->Release();
    if (!s.ok()) fprintf(stderr, "%s\n", s.ToString().c_str());
    return s.ok() ? 0 : 2;
  }
  if (cmd != "acquire") return Usage();

  // Blocked before the announcer thread exists, so that only sigtimedwait() below sees them.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGINT);
  sigprocmask(SIG_BLOCK, &term, nullptr);

  long repeat = args.Int("--repeat", 1);
  for (long i = 0; i < repeat; ++i) {
    auto start = Clock::now();
    pbx::Status s = (*vip)->Acquire();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    if (!s.ok()) {
      fprintf(stderr, "%s\n", s.ToString().c_str());
      return 2;
    }
    auto mac = (*vip)->InterfaceMac();
    printf("acquired mac=%s acquire_us=%lld\n", mac.ok() ? mac->c_str() : "?",
           static_cast<long long>(us.count()));
    fflush(stdout);
  }

  long hold_ms = args.Int("--hold-ms", 2000);
  timespec ts{hold_ms / 1000, (hold_ms % 1000) * 1000000};
  while (sigtimedwait(&term, nullptr, &ts) < 0 && errno == EINTR) {
  }
  if (args.Has("--release")) {
    if (pbx::Status s = (*vip)->Release(); !s.ok()) {
      fprintf(stderr, "%s\n", s.ToString().c_str());
      return 2;
    }
  }
  printf("sent=%llu\n", static_cast<unsigned long long>((*vip)->announcements_sent()));
  return 0;
}

int Serve(const Args& args) {
  if (args.pos.size() != 4) return Usage();
  const std::string& name = args.pos[1];
  SockAddr addr;
  if (!ParseSockAddr(args.pos[2], atoi(args.pos[3].c_str()), &addr)) return Usage();
  int fd = socket(addr.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int one = 1;
  bool freebind = addr.family == AF_INET
                      ? setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) == 0
                      : setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) == 0;
  if (!freebind || bind(fd, reinterpret_cast<sockaddr*>(&addr.ss), addr.len) < 0) {
    perror("serve: bind");
    return 2;
  }
  printf("serving\n");
  fflush(stdout);
  auto deadline = Clock::now() + std::chrono::milliseconds(args.Int("--for-ms", 30000));
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[512];
    sockaddr_storage from{};
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) continue;
    sendto(fd, name.data(), name.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
  }
  close(fd);
  return 0;
}

int Ask(const Args& args) {
  if (args.pos.size() != 3) return Usage();
  SockAddr addr;
  if (!ParseSockAddr(args.pos[1], atoi(args.pos[2].c_str()), &addr)) return Usage();
  // Connected: replies from any other source (e.g. a node's own address) do not count.
  int fd = socket(addr.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr.ss), addr.len) < 0 ||
      send(fd, "who", 3, 0) < 0) {
    perror("ask");
    return 1;
  }
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(args.Int("--timeout-ms", 200))) <= 0) return 1;
  char buf[512];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n <= 0) return 1;
  printf("%.*s\n", static_cast<int>(n), buf);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = Parse(argc, argv);
  if (args.pos.empty()) return Usage();
  const std::string& cmd = args.pos[0];
  if (cmd == "serve") return Serve(args);
  if (cmd == "ask") return Ask(args);
  if (cmd == "acquire" || cmd == "release" || cmd == "held") return VipCommand(cmd, args);
  return Usage();
}
