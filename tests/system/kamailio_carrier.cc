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

// A UDP port free on `address` right now; 0 if none could be bound.
uint16_t FreeUdpPort(const std::string& address) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (inet_pton(AF_INET, address.c_str(), &a.sin_addr) == 1 &&
      ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

}  // namespace

bool KamailioInstalled() {
  return ::access(kKamailioPath, X_OK) == 0 && ::access(kKamcmdPath, X_OK) == 0;
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
    options_.port = options_.netns.empty() ? FreeUdpPort(options_.address) : 5060;
  }
  if (options_.port == 0) return "no free UDP port on " + options_.address;
  std::string cfg = ReadFile(KAMAILIO_CARRIER_CFG);
  if (cfg.empty()) return std::string("cannot read ") + KAMAILIO_CARRIER_CFG;
  cfg = ReplaceAll(cfg, "@LISTEN@", options_.address + ":" + std::to_string(options_.port));
  cfg = ReplaceAll(cfg, "@DB@", db);
  cfg = ReplaceAll(cfg, "@CTL@", ctl_);
  cfg = ReplaceAll(cfg, "@FAR@", options_.far_address);
  std::ofstream(dir + "/kamailio.cfg") << cfg;

  // -D: stays in the foreground (its children still fork), so SIGTERM ends all of it.
  std::vector<std::string> argv = {
      kKamailioPath, "-D", "-E", "-f", dir + "/kamailio.cfg", "-P", dir + "/kam.pid",
      "-m",          "32", "-M", "4"};
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

std::vector<CarrierRegister> KamailioCarrier::Registers(const std::string& user) const {
  std::vector<CarrierRegister> out;
  std::string log = Log();
  static const std::regex line(R"(REGISTER user=(\S*) call-id=(\S+) cseq=(\d+))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    if ((*it)[1] == user) out.push_back({(*it)[1], (*it)[2], std::stoi((*it)[3])});
  }
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
