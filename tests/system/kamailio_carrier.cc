#include "tests/system/kamailio_carrier.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace pbx::test {
namespace {

constexpr char kKamcmdPath[] = "/usr/sbin/kamcmd";

// Binds a socket of `type` to `address`:`port` (0: any) and returns the port bound; 0 if
// it could not be bound.
uint16_t BindPort(const std::string& address, int type, uint16_t port) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  socklen_t len = sizeof a;
  uint16_t bound = 0;
  if (inet_pton(AF_INET, address.c_str(), &a.sin_addr) == 1 &&
      ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    bound = ntohs(a.sin_port);
  }
  ::close(fd);
  return bound;
}

// A UDP port free on `address` right now, free for TCP too when `tcp`; 0 if none found.
uint16_t FreePort(const std::string& address, bool tcp) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    uint16_t port = BindPort(address, SOCK_DGRAM, 0);
    if (port != 0 && (!tcp || BindPort(address, SOCK_STREAM, port) == port)) return port;
  }
  return 0;
}

// A self-signed certificate for `address` (P-256: quick to make), made for this run.
std::string MakeCertificate(const std::string& dir, const std::string& address) {
  CommandResult r = Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                         "/CN=carrier", "-addext", "subjectAltName=IP:" + address, "-keyout",
                         dir + "/carrier-key.pem", "-out", dir + "/carrier-cert.pem"});
  return r.exit_code == 0 ? "" : "openssl failed: " + r.err;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

}  // namespace

bool KamailioInstalled(bool tls) {
  if (::access(kKamailioPath, X_OK) != 0 || ::access(kKamcmdPath, X_OK) != 0) return false;
  if (!tls) return true;
  // Debian installs the modules under /usr/lib/<multiarch triplet>/kamailio/modules.
  std::error_code ec;
  for (const auto& lib : std::filesystem::directory_iterator("/usr/lib", ec)) {
    if (std::filesystem::exists(lib.path() / "kamailio/modules/tls.so", ec)) return true;
  }
  return false;
}

KamailioCarrier::KamailioCarrier(CarrierOptions options)
    : options_(std::move(options)), ctl_(options_.dir + "/kam.ctl") {}

KamailioCarrier::~KamailioCarrier() { Stop(); }

std::string KamailioCarrier::Start(std::chrono::milliseconds timeout) {
  const std::string& dir = options_.dir;
  std::string db = dir + "/db";
  std::filesystem::create_directories(db);
  std::filesystem::copy_file("/usr/share/kamailio/dbtext/kamailio/version", db + "/version",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream subscribers(db + "/subscriber");
  subscribers << "id(int,auto) username(string) domain(string) password(string) "
                 "ha1(string,null) ha1b(string,null) \n";
  int id = 0;
  for (const auto& [user, password] : options_.subscribers) {
    subscribers << ++id << ":" << user << ":carrier:" << password << "::\n";
  }
  subscribers.close();

  if (options_.port == 0) {
    options_.port = options_.netns.empty() ? FreePort(options_.address, options_.tcp) : 5060;
  }
  if (options_.port == 0) return "no free UDP port on " + options_.address;
  if (options_.tls && options_.tls_port == 0) {
    options_.tls_port =
        options_.netns.empty() ? BindPort(options_.address, SOCK_STREAM, 0) : uint16_t{5061};
    if (options_.tls_port == 0) return "no free TCP port on " + options_.address;
  }
  if (options_.tls && !std::filesystem::exists(tls_certificate())) {
    if (std::string why = MakeCertificate(dir, options_.address); !why.empty()) return why;
    // The carrier asks nothing of its TLS clients and, as a client itself (towards a
    // registered TLS contact), accepts the PBX's self-signed certificate.
    std::ofstream(dir + "/tls.cfg") << "[server:default]\nmethod = TLSv1.2+\n"
                                    << "verify_certificate = no\nrequire_certificate = no\n"
                                    << "private_key = " << dir << "/carrier-key.pem\n"
                                    << "certificate = " << tls_certificate() << "\n\n"
                                    << "[client:default]\nmethod = TLSv1.2+\n"
                                    << "verify_certificate = no\nrequire_certificate = no\n";
  }
  std::string cfg = ReadFile(KAMAILIO_CARRIER_CFG);
  if (cfg.empty()) return std::string("cannot read ") + KAMAILIO_CARRIER_CFG;
  cfg = ReplaceAll(cfg, "@LISTEN@", options_.address + ":" + std::to_string(options_.port));
  cfg = ReplaceAll(cfg, "@LISTEN_TLS@", options_.address + ":" + std::to_string(options_.tls_port));
  cfg = ReplaceAll(cfg, "@DIR@", dir);
  cfg = ReplaceAll(cfg, "@DB@", db);
  cfg = ReplaceAll(cfg, "@CTL@", ctl_);
  cfg = ReplaceAll(cfg, "@FAR@", options_.far_address);
  cfg = ReplaceAll(cfg, "@PEER@", options_.peer);
  cfg = ReplaceAll(cfg, "@CHALLENGE@", options_.challenge_invites ? "yes" : "no");
  std::ofstream(dir + "/kamailio.cfg") << cfg;

  // -DD: the creator stays in the foreground and its children fork (a single -D forks
  // nothing, which serves the first UDP socket only), so SIGTERM ends all of it.
  std::vector<std::string> argv = {
      kKamailioPath, "-DD", "-E", "-f", dir + "/kamailio.cfg", "-P", dir + "/kam.pid",
      "-m",          "32",  "-M", "4"};
  // The configuration's optional parts (#!ifdef).
  if (options_.tcp) argv.insert(argv.end(), {"-A", "WITH_TCP"});
  if (options_.tls) argv.insert(argv.end(), {"-A", "WITH_TLS"});
  if (!options_.netns.empty()) argv.insert(argv.begin(), {"ip", "netns", "exec", options_.netns});
  process_ = std::make_unique<Process>(argv, dir + "/kamailio.log");
  if (!WaitFor(
          [&] {
            return Run({kKamcmdPath, "-s", "unix:" + ctl_, "core.uptime"}).exit_code == 0;
          },
          timeout)) {
    return "kamailio did not start:\n" + Log();
  }
  return "";
}

std::vector<CarrierRequest> KamailioCarrier::Requests(const std::string& method) const {
  std::vector<CarrierRequest> out;
  std::string log = Log();
  // The configuration's xlog line per request.
  static const std::regex line(
      R"(REQUEST (\S+) user=(\S*) call-id=(\S+) cseq=(\d+) proto=(\S+) conid=(\S+) )"
      R"(contact=(\S*) via=([^\n]*))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    const std::smatch& m = *it;
    if (m[1] != method) continue;
    out.push_back({m[1], m[2], m[3], std::stoi(m[4]), m[5], m[6], m[7], m[8]});
  }
  return out;
}

std::vector<std::string> KamailioCarrier::InvitesSentTo(const std::string& address,
                                                        uint16_t port) const {
  std::vector<std::string> out;
  std::string log = Log();
  static const std::regex line(R"(SENT INVITE to=(\S+) proto=(\S+))");
  std::string to = address + ":" + std::to_string(port);
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    if ((*it)[1] == to) out.push_back((*it)[2]);
  }
  return out;
}

std::vector<CarrierRequest> KamailioCarrier::Registers(const std::string& user) const {
  std::vector<CarrierRequest> out = Requests("REGISTER");
  std::erase_if(out, [&](const CarrierRequest& r) { return r.user != user; });
  return out;
}

std::optional<CarrierBinding> KamailioCarrier::Binding(const std::string& user) const {
  // "s:": kamcmd would send a numeric user such as 7001 as an integer.
  std::string dump = Kamcmd({"ul.lookup", "location", "s:" + user});
  std::smatch m;
  CarrierBinding b;
  if (std::regex_search(dump, m, std::regex(R"(Call-ID:\s*(\S+))"))) b.call_id = m[1];
  if (std::regex_search(dump, m, std::regex(R"(CSeq:\s*(\d+))"))) b.cseq = std::stoi(m[1]);
  if (b.call_id.empty() || b.cseq < 0) return std::nullopt;
  return b;
}

void KamailioCarrier::Stop() {
  if (process_) process_->Signal(SIGTERM);
}

std::string KamailioCarrier::Log() const { return process_ ? process_->Log() : ""; }

std::string KamailioCarrier::Kamcmd(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {kKamcmdPath, "-s", "unix:" + ctl_};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = Run(argv);
  return r.exit_code == 0 ? r.out : "";
}

}  // namespace pbx::test
