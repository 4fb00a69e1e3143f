// Failover of the phone service (issue 6, item 6), with real processes in network namespaces
// (the pair lab, tests/system/pair_lab.h; root only):
//
//   pbxb<pid>_a, _b   node A / B       10.219.0.1, .2    the VIP 10.219.0.100 on the active
//   pbxb<pid>_w       pbx-witness      10.219.0.4
//   pbxb<pid>_c       the probes       10.219.0.3        REGISTER, ICMP and call probes
//   pbxb<pid>_s       sipp             10.219.0.20       N phones registered through the VIP
//   pbxb<pid>_p1, _p2 baresip          10.219.0.11, .12  a call in progress (with baresip)
//
// Each run kills the active with SIGKILL and times, from the kill:
//   detection   the standby's log line "peer ... is dead" (its realtime timestamp)
//   vip         the first ICMP echo reply from the VIP whose source MAC is the new holder's
//               (the dead node's kernel still answers on the VIP until the gratuitous ARP)
//   register    the first response (401) to a REGISTER sent to the VIP every 15 ms
//   call        the first INVITE -> 200 between two registered extensions, tried every 30 ms
//   audio gap   the longest pause of RTP from the VIP at either baresip phone of the call
//   lost        sipp's N phones minus the new active's bindings of them (no phone refreshes)
// Then the killed node restarts, resyncs and is the next run's standby: the nodes take turns.
// A spurious failover (a second "is dead", the new active not staying active) is printed.
//
// Usage: pbx_failover_netns_bench [--quick] [--runs N] [--phones N]
// Exit 77 where namespaces cannot be created or sipp is missing (ctest skips).
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>

#include "tests/integration/sip_phone.h"
#include "tests/support/process.h"
#include "tests/support/sip_test_ua.h"
#include "tests/system/baresip.h"
#include "tests/system/pair_lab.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using pbx::test::PairLab;
using pbx::test::SipResponse;
using pbx::test::SipTestUa;

constexpr char kPassword[] = "Fail0ver-pw";
constexpr int kProbeOctet = 3, kSippOctet = 20;
constexpr auto kProbeDeadline = 10s;  // a probe that gets nothing by then reports a failure

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string LoadAverage() {
  std::string s = pbx::test::ReadFile("/proc/loadavg");
  return s.substr(0, s.find(' ', s.find(' ', s.find(' ') + 1) + 1));
}

// The extensions of sipp's phones, 30001..: its injection file names them with their
// credentials (sipp expands no [fieldN] inside [authentication], so the keyword is a field).
std::string SippNumber(int i) { return std::to_string(30001 + i); }
std::string SippPassword(int i) {
  std::string digits = SippNumber(i);
  for (char& c : digits) c = static_cast<char>('a' + (c - '0'));  // no number in a password
  return "Bench7-pw-" + digits;
}

// Creates extensions through node `i`'s REST API, asked on its loopback from inside its
// namespace on one keep-alive connection. No keep-alive OPTIONS (qualify_interval 0): sipp's
// phones do not answer once sipp has exited. Returns "" or what failed.
std::string CreateExtensions(const PairLab& lab, int i,
                             const std::vector<std::pair<std::string, std::string>>& exts) {
  const std::string run_dir = lab.node(i)->run_dir();
  json ready = json::parse(pbx::test::ReadFile(run_dir + "/ready.json"), nullptr, false);
  std::string token = pbx::test::ReadFile(run_dir + "/admin.token");
  while (!token.empty() && token.back() == '\n') token.pop_back();
  if (ready.is_discarded() || token.empty()) return "no ready.json or admin.token";
  return pbx::test::InNetns(lab.ns(lab.host(i)), [&]() -> std::string {
    httplib::SSLClient c("127.0.0.1", ready["api"].get<int>());
    c.enable_server_certificate_verification(false);
    c.set_keep_alive(true);
    c.set_bearer_token_auth(token.c_str());
    for (const auto& [number, password] : exts) {
      json body = {{"number", number},
                   {"name", "Bench " + number},
                   {"password", password},
                   {"qualify_interval", 0}};
      // 503: the active does not accept writes while its serving license is unconfirmed (a
      // loaded machine delays heartbeats); set-up, so it waits for that to pass.
      httplib::Result r = c.Post("/api/v1/extensions", body.dump(), "application/json");
      for (Clock::time_point until = Clock::now() + 10s;
           r && r->status == 503 && Clock::now() < until; std::this_thread::sleep_for(100ms)) {
        r = c.Post("/api/v1/extensions", body.dump(), "application/json");
      }
      if (!r || r->status != 201) {
        return fmt::format("extension {}: HTTP {} {}", number, r ? r->status : 0, r ? r->body : "");
      }
    }
    return "";
  });
}

// How many of sipp's `n` extensions node `i` has a binding of; -1 if it does not answer.
int SippBindings(const PairLab& lab, int i, int n) {
  json regs = lab.node(i)->PbxctlJson({"reg", "list"});
  if (!regs.contains("registrations")) return -1;
  int count = 0;
  for (const json& r : regs["registrations"]) {
    int number = std::atoi(r.value("number", "").c_str());
    count += number >= 30001 && number < 30001 + n;
  }
  return count;
}

// The calls node `i` carries in state talking; -1 if it does not answer.
int TalkingCalls(const PairLab& lab, int i) {
  json c = lab.node(i)->PbxctlJson({"calls"});
  if (!c.contains("calls")) return -1;
  int talking = 0;
  for (const json& call : c["calls"]) talking += call["state"] == "talking";
  return talking;
}

// The realtime instants (unix ms) of pbxd log lines containing `what` at or after
// `since_ms` ("ts=2026-11-24T23:43:25.123Z level=...").
std::vector<int64_t> LogTimes(const std::string& log, const std::string& what, int64_t since_ms) {
  std::vector<int64_t> out;
  for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) {
    size_t line = log.rfind('\n', at);
    line = line == std::string::npos ? 0 : line + 1;
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(log.c_str() + line, "ts=%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
      continue;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t t = static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
    if (t >= since_ms) out.push_back(t);
  }
  return out;
}

// Runs `probe` on a thread inside namespace `ns`; its result (ms since the kill, or nullopt
// when it got no answer in time) is ready after join().
class Probe {
 public:
  Probe(const std::string& ns, std::function<std::optional<double>()> probe)
      : thread_([this, ns, probe = std::move(probe)] {
          result_ = pbx::test::InNetns(ns, [&] { return probe(); });
        }) {}
  std::optional<double> Join() {
    thread_.join();
    return result_;
  }

 private:
  std::optional<double> result_;
  std::thread thread_;
};

// ICMP echo to the VIP every 5 ms until a reply comes from `mac` (the new holder's).
std::optional<double> VipProbe(const std::string& vip, const std::string& mac,
                               Clock::time_point killed) {
  int tx = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
  int rx = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
  if (tx < 0 || rx < 0) return std::nullopt;
  int small = 4096;
  setsockopt(tx, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));  // its copies go unread
  timeval tv{0, 5'000};
  setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  inet_pton(AF_INET, vip.c_str(), &to.sin_addr);
  std::optional<double> found;
  uint16_t seq = 0;
  while (!found && Clock::now() - killed < kProbeDeadline) {
    icmphdr echo{};
    echo.type = ICMP_ECHO;
    echo.un.echo.id = htons(static_cast<uint16_t>(getpid()));
    echo.un.echo.sequence = htons(++seq);
    uint32_t sum = 0;  // the checksum of an 8-byte header without data
    for (int i = 0; i < 4; ++i) sum += reinterpret_cast<const uint16_t*>(&echo)[i];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    echo.checksum = static_cast<uint16_t>(~sum);
    sendto(tx, &echo, sizeof(echo), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    Clock::time_point sent = Clock::now();
    while (!found && Clock::now() - sent < 5ms) {
      unsigned char buf[1500];
      sockaddr_ll from{};
      socklen_t len = sizeof(from);
      ssize_t n = recvfrom(rx, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 28) continue;
      const auto* ip = reinterpret_cast<const iphdr*>(buf);
      const auto* icmp = reinterpret_cast<const icmphdr*>(buf + ip->ihl * 4);
      if (ip->protocol != IPPROTO_ICMP || ip->saddr != to.sin_addr.s_addr ||
          icmp->type != ICMP_ECHOREPLY) {
        continue;
      }
      const unsigned char* a = from.sll_addr;
      if (fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", a[0], a[1], a[2], a[3], a[4],
                      a[5]) == mac) {
        found = Ms(Clock::now() - killed);
      }
    }
  }
  ::close(tx);
  ::close(rx);
  return found;
}

// A REGISTER (no credentials) to the VIP every 15 ms, each its own Call-ID, until one sent
// after the kill is answered (401 from the new active; the dead one answers nothing).
std::optional<double> RegisterProbe(const std::string& local_ip, const std::string& vip,
                                    Clock::time_point killed) {
  SipTestUa ua(local_ip, vip, 5060);
  for (int i = 0; Clock::now() - killed < kProbeDeadline; ++i) {
    std::string call_id = fmt::format("probe-{}-{}", UnixMs(), i);
    ua.SendRaw(fmt::format(
        "REGISTER sip:{vip} SIP/2.0\r\nVia: SIP/2.0/UDP "
        "{ip}:{port};branch=z9hG4bKp{i}x{t};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:2100@{vip}>;tag=p{i}\r\nTo: <sip:2100@{vip}>\r\n"
        "Call-ID: {cid}\r\nCSeq: 1 REGISTER\r\nContact: <sip:2100@{ip}:{port}>\r\n"
        "Expires: 60\r\nContent-Length: 0\r\n\r\n",
        fmt::arg("vip", vip), fmt::arg("ip", local_ip), fmt::arg("port", ua.local_port()),
        fmt::arg("i", i), fmt::arg("t", UnixMs()), fmt::arg("cid", call_id)));
    Clock::time_point sent = Clock::now();
    while (Clock::now() - sent < 15ms) {
      std::optional<SipResponse> r = ua.Receive(5ms);
      if (r && r->Header("Call-ID") == call_id) return Ms(Clock::now() - killed);
    }
  }
  return std::nullopt;
}

// Answers every INVITE with 200 and an SDP, and every BYE with 200, until `stop`.
void Callee(SipTestUa& ua, const std::atomic<bool>& stop) {
  while (!stop) {
    std::optional<SipResponse> m = ua.ReceiveMessage(50ms);
    if (!m || m->status != 0) continue;
    if (m->method == "INVITE") {
      ua.Respond(*m, 200, "OK", fmt::format("c{}", UnixMs()),
                 fmt::format("Contact: <sip:2102@{}:{}>\r\n", ua.local_ip(), ua.local_port()),
                 pbx::test::Sdp(ua.local_ip(), 40002));
    } else if (m->method == "BYE") {
      ua.Respond(*m, 200, "OK");
    }
  }
}

// 2101 calls 2102 through the VIP: an INVITE every 30 ms until one is challenged, then the
// authenticated INVITE; the instant of its 200. The call is then hung up. `status` gets the
// last final response seen (for a failed probe). It runs on the main thread: OpenSSL's
// per-thread state of the digests would leak on a short-lived one (LeakSanitizer).
std::optional<double> CallProbe(pbx::test::Phone& caller, Clock::time_point killed, int* status) {
  const std::string uri = fmt::format("sip:2102@{}", caller.server);
  const std::string sdp = pbx::test::Sdp(caller.ua->local_ip(), 40000);
  // The final response to the current INVITE; a provisional one extends the wait to 2 s.
  auto final = [&](std::chrono::milliseconds wait) -> std::optional<SipResponse> {
    Clock::time_point until = Clock::now() + wait;
    while (Clock::now() < until) {
      std::optional<SipResponse> r = caller.ua->Receive(5ms);
      if (!r || r->Header("Call-ID") != caller.call_id) continue;
      if (r->status >= 200) return r;
      until = std::max(until, Clock::now() + 2s);
    }
    return std::nullopt;
  };
  for (int i = 0; Clock::now() - killed < kProbeDeadline; ++i) {
    caller.call_id = fmt::format("probe-call-{}-{}", UnixMs(), i);
    caller.local_tag = fmt::format("t{}", i);
    caller.cseq = 1;
    caller.ua->SendRaw(caller.InviteText("2102", sdp, ""));
    std::optional<SipResponse> r = final(30ms);
    if (!r) continue;
    *status = r->status;
    caller.AckError(*r, "2102");
    if (r->status != 401) continue;
    ++caller.cseq;
    caller.ua->SendRaw(caller.InviteText(
        "2102", sdp, SipTestUa::Authorization(*r, "2101", kPassword, "INVITE", uri, "MD5")));
    std::optional<SipResponse> ok = final(5s);
    if (!ok) continue;
    *status = ok->status;
    if (ok->status != 200) {
      caller.AckError(*ok, "2102");
      continue;
    }
    double at = Ms(Clock::now() - killed);
    caller.Ack2xx(*ok);
    caller.ua->SendRaw(caller.InDialog("BYE", caller.cseq + 1));
    final(1s);
    return at;
  }
  return std::nullopt;
}

struct Stat {
  const char* name;
  std::vector<double> values = {};
  int failed = 0;  // runs without a figure
};

void Print(const Stat& s) {
  if (s.values.empty()) {
    std::printf("  %-28s no figure (%d runs failed)\n", s.name, s.failed);
    return;
  }
  std::vector<double> v = s.values;
  std::sort(v.begin(), v.end());
  double median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  std::printf("  %-28s median %6.0f  worst %6.0f  best %6.0f  (%zu runs%s)\n", s.name, median,
              v.back(), v.front(), v.size(),
              s.failed ? fmt::format(", {} failed", s.failed).c_str() : "");
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 10, phones = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      runs = 2;
      phones = 20;
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (a == "--phones" && i + 1 < argc) {
      phones = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--runs N] [--phones N]\n", argv[0]);
      return 2;
    }
  }
  if (access("/usr/bin/sipp", X_OK) != 0) {
    std::printf("skipped: /usr/bin/sipp is missing (Debian sip-tester)\n");
    return 77;
  }
  const bool audio = access(pbx::test::kBaresipPath, X_OK) == 0;
  PairLab lab({.prefix = "pbxb", .subnet = "10.219.0", .phones = audio});
  if (std::string why = lab.Create(); !why.empty()) {
    std::printf("skipped: %s\n", why.c_str());
    return 77;
  }
  auto fail = [&](const std::string& what) {
    std::fprintf(stderr, "failover bench: %s\n", what.c_str());
    return 1;
  };
  for (auto [role, octet] : {std::pair{"c", kProbeOctet}, std::pair{"s", kSippOctet},
                             std::pair{"p1", 11}, std::pair{"p2", 12}}) {
    if (std::string e = lab.AddHost(role, octet); !e.empty()) return fail(e);
  }
  if (std::string e = lab.StartPair(); !e.empty()) return fail(e);
  const std::string vip = lab.vip(), probe_ip = lab.Addr(kProbeOctet);
  const std::string load_before = LoadAverage();

  // Extensions: the call's baresip phones, the probes, sipp's phones.
  std::vector<std::pair<std::string, std::string>> exts = {{"2001", kPassword},
                                                           {"2002", kPassword},
                                                           {"2100", kPassword},
                                                           {"2101", kPassword},
                                                           {"2102", kPassword}};
  for (int i = 0; i < phones; ++i) exts.emplace_back(SippNumber(i), SippPassword(i));
  if (std::string e = CreateExtensions(lab, 0, exts); !e.empty()) return fail(e);

  // sipp registers its phones through the VIP once (Expires 3600) and exits.
  {
    std::string inf = lab.dir().Sub("users.csv");
    std::ofstream f(inf);
    f << "SEQUENTIAL\n";
    for (int i = 0; i < phones; ++i) {
      f << SippNumber(i) << ";" << SippPassword(i) << ";[authentication username=" << SippNumber(i)
        << " password=" << SippPassword(i) << "]\n";
    }
  }
  // Registering is set-up, not a figure: on a loaded machine sipp may time some out, so
  // it goes again (every phone, a refresh for those already bound), three times at most.
  pbx::test::CommandResult sipp;
  for (int attempt = 0; attempt < 3 && SippBindings(lab, 0, phones) < phones; ++attempt) {
    sipp = pbx::test::Run({"ip",
                           "netns",
                           "exec",
                           lab.ns("s"),
                           "sipp",
                           vip + ":5060",
                           "-sf",
                           BENCH_SIP_DIR "/reg_auth.xml",
                           "-inf",
                           lab.dir().Sub("users.csv"),
                           "-i",
                           lab.Addr(kSippOctet),
                           "-p",
                           "5070",
                           "-r",
                           "100",
                           "-m",
                           std::to_string(phones),
                           "-l",
                           std::to_string(phones),
                           "-recv_timeout",
                           "8000",
                           "-timeout",
                           "120s",
                           "-nostdin"},
                          150s);
  }
  if (int bound = SippBindings(lab, 0, phones); bound != phones) {
    return fail(fmt::format("sipp registered {} of {} phones: {}{}", bound, phones,
                            sipp.out.substr(0, 4000), sipp.err.substr(0, 2000)));
  }

  // The probes' phones: 2101 (caller) and 2102 (callee, answering on its own thread).
  std::atomic<bool> stop_callee{false};
  std::unique_ptr<SipTestUa> callee = pbx::test::InNetns(
      lab.ns("c"), [&] { return std::make_unique<SipTestUa>(probe_ip, vip, 5060); });
  // The caller's socket is bound in the probes' namespace; it is used from the main thread.
  std::unique_ptr<pbx::test::Phone> caller = pbx::test::InNetns(lab.ns("c"), [&] {
    auto p = std::make_unique<pbx::test::Phone>("2101", probe_ip, 5060);
    p->ua = std::make_unique<SipTestUa>(probe_ip, vip, 5060);  // the VIP, not loopback
    p->server = vip + ":5060";
    return p;
  });
  for (const char* number : {"2101", "2102"}) {
    SipTestUa& reg = number == std::string("2101") ? *caller->ua : *callee;
    std::optional<SipResponse> r = reg.DoRegister(
        {.user = number, .password = kPassword, .expires = 3600, .algorithm = "MD5"});
    if (!r || r->status != 200) {
      return fail(fmt::format("{} did not register: {}", number, r ? r->raw : "no answer"));
    }
  }
  std::thread callee_thread([&] { Callee(*callee, stop_callee); });

  // The call in progress: baresip 2001 calls 2002 (answering by itself), a tone each way.
  std::vector<std::unique_ptr<pbx::test::BaresipPhone>> call_phones;
  std::vector<std::unique_ptr<pbx::test::RtpGapMeter>> meters;
  int active = 0;
  auto dial = [&] {
    return call_phones[0]->Command("dial", fmt::format("sip:2002@{}", vip)) &&
           pbx::test::WaitFor([&] { return TalkingCalls(lab, active) == 1; }, 15s);
  };
  if (audio) {
    pbx::test::WriteToneWav(lab.dir().Sub("tone.wav"), 60 + 40 * runs);
    for (auto [host, number, octet] :
         {std::tuple{"p1", "2001", 11}, std::tuple{"p2", "2002", 12}}) {
      pbx::test::BaresipOptions o;
      o.netns = lab.ns(host);
      o.dir = lab.dir().Sub(std::string("phone") + number);
      o.listen = lab.Addr(octet) + ":5060";
      o.aor = fmt::format("sip:{}@{}", number, vip);
      o.password = kPassword;
      o.account_params = ";audio_codecs=PCMU;answermode=auto";
      o.tone = lab.dir().Sub("tone.wav");
      o.regint = 3600;  // no refresh during the bench: the new active must know them already
      call_phones.push_back(std::make_unique<pbx::test::BaresipPhone>(o));
      meters.push_back(std::make_unique<pbx::test::RtpGapMeter>(lab.ns(host), vip));
    }
    if (!pbx::test::WaitFor(
            [&] { return lab.node(0)->Registered("2001") && lab.node(0)->Registered("2002"); },
            20s)) {
      return fail("the baresip phones did not register: " + call_phones[0]->Log());
    }
    if (!dial()) return fail("the call did not connect: " + call_phones[0]->Log());
  }

  Stat detection{"detection (ms)"}, vip_move{"VIP move (ms)"},
      first_register{"first REGISTER answered (ms)"}, first_call{"first call connected (ms)"},
      gap{"audio gap (ms, worse phone)"}, lost{"registrations lost"};
  int flaps = 0;
  std::printf("failover bench: %d runs, %d sipp phones, audio %s, load average %s\n", runs, phones,
              audio ? "measured" : "not measured (no baresip)", load_before.c_str());
  for (int run = 0; run < runs; ++run) {
    const int standby = 1 - active;
    // The standby has caught up: it holds every binding the active has.
    if (!pbx::test::WaitFor([&] { return SippBindings(lab, standby, phones) == phones; }, 30s)) {
      return fail(fmt::format("run {}: {} holds {} of {} bindings before the kill", run + 1,
                              lab.name(standby), SippBindings(lab, standby, phones), phones));
    }
    if (audio && TalkingCalls(lab, active) != 1 && !dial()) {
      return fail(fmt::format("run {}: no call in progress before the kill", run + 1));
    }
    std::this_thread::sleep_for(1s);  // audio flowing, the call record replicated
    for (auto& m : meters) m->Reset();

    const Clock::time_point killed = Clock::now();
    const int64_t killed_unix_ms = UnixMs();
    lab.node(active)->process().Signal(SIGKILL);
    int call_status = 0;
    Probe vp(lab.ns("c"), [&] { return VipProbe(vip, lab.mac(standby), killed); });
    Probe rp(lab.ns("c"), [&] { return RegisterProbe(probe_ip, vip, killed); });
    std::optional<double> c = CallProbe(*caller, killed, &call_status);
    std::optional<double> v = vp.Join(), r = rp.Join();

    std::string standby_log = lab.node(standby)->Log();
    std::vector<int64_t> dead = LogTimes(standby_log, " is dead: ", killed_unix_ms - 1);
    std::optional<double> d;
    if (!dead.empty()) d = static_cast<double>(dead.front() - killed_unix_ms);

    std::this_thread::sleep_for(std::max(
        0ms, 3s - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed)));
    std::optional<double> g;
    std::string packets;
    for (auto& m : meters) packets += fmt::format(" {}", m->packets());
    if (audio && TalkingCalls(lab, standby) == 1) {
      double worst = 0;
      for (auto& m : meters) worst = std::max(worst, m->max_gap_ms());
      g = worst;
    }
    int bindings = SippBindings(lab, standby, phones);

    for (auto [stat, value] :
         {std::pair{&detection, d}, std::pair{&vip_move, v}, std::pair{&first_register, r},
          std::pair{&first_call, c}, std::pair{&gap, g}}) {
      if (value) {
        stat->values.push_back(*value);
      } else if (stat != &gap || audio) {
        ++stat->failed;
      }
    }
    lost.values.push_back(bindings < 0 ? phones : phones - bindings);
    auto show = [](const std::optional<double>& x) {
      return x ? fmt::format("{:.0f}", *x) : std::string("-");
    };
    std::printf(
        "run %2d: %s killed; detection %s, VIP %s, REGISTER %s, call %s%s, audio gap %s ms (RTP "
        "packets%s); "
        "%d/%d bindings on %s\n",
        run + 1, lab.name(active).c_str(), show(d).c_str(), show(v).c_str(), show(r).c_str(),
        show(c).c_str(), c ? "" : fmt::format(" (last status {})", call_status).c_str(),
        show(g).c_str(), packets.c_str(), bindings, phones, lab.name(standby).c_str());

    // The killed node comes back, resyncs and is the next run's standby.
    if (std::string e = lab.Start(active); !e.empty()) return fail(e);
    if (!lab.WaitRole(active, "standby", 30s)) {
      return fail(
          fmt::format("{} did not rejoin as standby but '{}'", lab.name(active), lab.Role(active)));
    }
    // A spurious failover: the new active declared its peer dead more than once, or lost
    // its role, during the run.
    std::vector<int64_t> dead_after =
        LogTimes(lab.node(standby)->Log(), " is dead: ", killed_unix_ms - 1);
    std::string role = lab.Role(standby);
    if (dead_after.size() > 1 || role != "active") {
      ++flaps;
      std::string at;
      for (int64_t t : dead_after) at += fmt::format(" {}", t - killed_unix_ms);
      std::printf(
          "run %2d: SPURIOUS: %s declared its peer dead %zu times (at ms after the kill:%s), "
          "role now '%s'\n",
          run + 1, lab.name(standby).c_str(), dead_after.size(), at.c_str(), role.c_str());
    }
    active = standby;
  }
  const std::string load_after = LoadAverage();
  stop_callee = true;
  callee_thread.join();

  std::printf(
      "failover bench, %d kill -9 runs, default timers, %d sipp phones; load average "
      "%s before, %s after:\n",
      runs, phones, load_before.c_str(), load_after.c_str());
  for (const Stat* s : {&detection, &vip_move, &first_register, &first_call, &gap, &lost}) {
    Print(*s);
  }
  double lost_total = 0;
  for (double x : lost.values) lost_total += x;
  std::printf("  registrations lost in all: %.0f; spurious failovers: %d\n", lost_total, flaps);
  const bool complete = detection.failed == 0 && vip_move.failed == 0 &&
                        first_register.failed == 0 && first_call.failed == 0 && gap.failed == 0;
  return complete && lost_total == 0 ? 0 : 1;
}
